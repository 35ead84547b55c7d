"""Reading a GGUF file: its metadata fields and tensors, one field's value, a tensor as float32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from qa_assistant.errors import UserError


def read_gguf(parts: list[Path]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The metadata fields (of the first part) and the tensors (of all parts) by name."""
    import gguf  # deferred: ~0.2 s to import, not needed when a conversion is cached

    readers = []
    for part in parts:
        try:
            readers.append(gguf.GGUFReader(part))
        except (ValueError, OSError, IndexError) as error:
            raise UserError(f"cannot read GGUF file {part}: {error}") from None
    fields = readers[0].fields
    count = int(fields["split.count"].contents()) if "split.count" in fields else 1
    if count != len(parts):
        names = ", ".join(part.name for part in parts)
        raise UserError(f"GGUF model {parts[0].name} has {count} parts, but {len(parts)} were given: {names}")
    tensors: dict[str, Any] = {}
    for reader in readers:
        for tensor in reader.tensors:
            if tensor.name in tensors:
                raise UserError(
                    f"GGUF tensor {tensor.name} appears twice in {', '.join(p.name for p in parts)}"
                )
            tensors[tensor.name] = tensor
    return fields, tensors


def field(fields: dict[str, Any], key: str, default: Any = None) -> Any:
    """The value of metadata field `key`, or `default` when the file has none."""
    return fields[key].contents() if key in fields else default


def required_int(fields: dict[str, Any], key: str) -> int:
    """The integer value of metadata field `key`; a file without it is refused."""
    if key not in fields:
        raise UserError(f"GGUF model lacks the metadata key {key}")
    return int(fields[key].contents())


def float32_value(value: float) -> float:
    """A float32 metadata value as the decimal it was written from (9.99999974e-06 is 1e-05)."""
    return float(str(np.float32(value)))


def dequantize(tensor: Any) -> np.ndarray:
    """A GGUF tensor as float32 numpy, in numpy's dimension order (GGUF lists them reversed)."""
    import gguf  # deferred: see read_gguf

    try:
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise UserError(
            f"GGUF tensor {tensor.name} has type {tensor.tensor_type.name}, which gguf cannot read"
        ) from None
    shape = tuple(int(size) for size in reversed(tensor.shape))
    return np.ascontiguousarray(values.reshape(shape), dtype=np.float32)
