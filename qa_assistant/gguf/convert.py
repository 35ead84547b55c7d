"""Converting a GGUF model into a directory keras-hub loads: written under a temporary name and renamed
into place when complete, once per file in the user's cache (`cached_conversion`)."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qa_assistant import atomic
from qa_assistant.errors import UserError
from qa_assistant.gguf.llama import hf_weights, model_config
from qa_assistant.gguf.reading import field, read_gguf
from qa_assistant.gguf.tokenizer import tokenizer_files
from qa_assistant.layout import cache_root

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama",)
SUPPORTED_TOKENIZERS = ("gpt2",)
CONVERSION_FILE = "conversion.json"
# Part of the cache key: bump it when the written directory changes, so older conversions are redone.
FORMAT_VERSION = 1
OUTPUT_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    CONVERSION_FILE,
)

# How gguf-split names the parts of a split model.
SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def convert_gguf(path_or_paths: str | Path | Sequence[str | Path], out_dir: str | Path) -> Path:
    """Writes a Hugging Face checkpoint directory that keras-hub loads, from a GGUF language model.

    An existing `out_dir` is replaced once the new directory is complete.

    Args:
        path_or_paths: the GGUF file; for a split model any one part, or all parts.
        out_dir: the directory to write.

    Returns:
        `out_dir`.

    Raises:
        UserError: the file is missing or damaged, or holds a model this converter does not support.
    """
    return _convert(gguf_parts(path_or_paths), Path(out_dir), replace=True)


def cached_conversion(gguf_path: str | Path | Sequence[str | Path]) -> Path:
    """The converted directory of a GGUF model, converting it the first time only.

    The conversion lives under `cache_root() / "lm"`, in a directory named
    after the file and a key of its content (each part's name, size and
    SHA-256, about 0.25 s for SmolLM2's 98 MB, and `FORMAT_VERSION`): a changed
    file is converted again, and every virtual environment with the same
    package shares one conversion. A complete earlier conversion is reused;
    leftovers of a killed one are removed.

    Args:
        gguf_path: the GGUF file; for a split model any one part, or all parts.

    Returns:
        The directory, ready for `from_preset`.

    Raises:
        UserError: as `convert_gguf`.
    """
    parts = gguf_parts(gguf_path)
    key = hashlib.sha256(str(FORMAT_VERSION).encode())
    for part in parts:
        key.update(f"\0{part.name}\0{part.stat().st_size}\0{_sha256(part)}".encode())
    match = SPLIT_NAME.match(parts[0].name)
    stem = match["stem"] if match else parts[0].stem
    target = cache_root() / "lm" / f"{stem}-{key.hexdigest()[:12]}"
    if is_complete(target):
        log.debug("reusing the conversion of %s in %s", parts[0].name, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic.remove_stale(target.parent)
    log.info(
        "converting %s to a keras-hub checkpoint in %s (once; later loads reuse it)", parts[0].name, target
    )
    start = time.perf_counter()
    _convert(parts, target, replace=False)
    log.info("converted %s in %.1f s", parts[0].name, time.perf_counter() - start)
    return target


def is_complete(directory: str | Path) -> bool:
    """Whether `directory` holds a finished conversion written by this `FORMAT_VERSION`."""
    directory = Path(directory)
    if not all((directory / name).is_file() for name in OUTPUT_FILES):
        return False
    try:
        record = json.loads((directory / CONVERSION_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("format_version") == FORMAT_VERSION


def gguf_parts(path_or_paths: str | Path | Sequence[str | Path], search: Sequence[Path] = ()) -> list[Path]:
    """The absolute paths of a GGUF model's files, in order.

    One part of a split model (`NAME-00002-of-00003.gguf`) stands for all of
    them, found beside it or else in one of the `search` directories.

    Raises:
        UserError: a file, or a part of a split model, is missing.
    """
    given = [path_or_paths] if isinstance(path_or_paths, (str, Path)) else list(path_or_paths)
    if not given:
        raise UserError("no GGUF file given")
    paths = [Path(path).expanduser().resolve() for path in given]
    match = SPLIT_NAME.match(paths[0].name)
    if len(paths) == 1 and match:
        count = int(match["count"])
        names = [f"{match['stem']}-{no:05d}-of-{count:05d}.gguf" for no in range(1, count + 1)]
        places = [paths[0].parent, *search]
        paths = [next((d / n for d in places if (d / n).is_file()), paths[0].parent / n) for n in names]
        missing = [path.name for path in paths if not path.is_file()]
        if missing:
            raise UserError(
                f"GGUF model {match['stem']} is split into {count} parts; missing {', '.join(missing)}"
            )
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise UserError(f"GGUF file not found: {', '.join(missing)}")
    return sorted(set(paths), key=lambda path: path.name)


def _convert(parts: list[Path], out_dir: Path, replace: bool) -> Path:
    start = time.perf_counter()
    fields, tensors = read_gguf(parts)
    _check_supported(fields, parts[0])
    config = model_config(fields, tensors)
    tokenizer, tokenizer_config = tokenizer_files(fields, config)
    weights = hf_weights(tensors, config)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(atomic.temporary_name(out_dir.name))
    try:
        tmp.mkdir()
        _write_json(tmp / "config.json", config)
        _save_safetensors(weights, tmp / "model.safetensors")
        del weights
        _write_json(tmp / "tokenizer.json", tokenizer)
        _write_json(tmp / "tokenizer_config.json", tokenizer_config)
        record = _conversion_record(parts, fields, tensors, time.perf_counter() - start)
        _write_json(tmp / CONVERSION_FILE, record)  # last: its presence marks a complete directory
        _install(tmp, out_dir, replace)
    finally:
        atomic.remove(tmp)
    return out_dir


def _check_supported(fields: dict[str, Any], path: Path) -> None:
    architecture = field(fields, "general.architecture")
    if architecture not in SUPPORTED_ARCHITECTURES:
        raise UserError(
            f"GGUF file {path.name} holds a '{architecture}' model; "
            f"only {', '.join(SUPPORTED_ARCHITECTURES)} GGUF models can be converted"
        )
    tokenizer = field(fields, "tokenizer.ggml.model")
    if tokenizer not in SUPPORTED_TOKENIZERS:
        raise UserError(
            f"GGUF file {path.name} has a '{tokenizer}' tokenizer; only byte-level BPE "
            f"({', '.join(SUPPORTED_TOKENIZERS)}) tokenizers can be converted"
        )


def _conversion_record(
    parts: list[Path], fields: dict[str, Any], tensors: dict[str, Any], seconds: float
) -> dict[str, Any]:
    types = {name: tensor.tensor_type.name for name, tensor in tensors.items()}
    return {
        "format_version": FORMAT_VERSION,
        "sources": [{"name": p.name, "size": p.stat().st_size, "sha256": _sha256(p)} for p in parts],
        "sha256_of": "the whole file",
        "architecture": field(fields, "general.architecture"),
        "model_name": field(fields, "general.name"),
        "tokenizer_pre": field(fields, "tokenizer.ggml.pre"),
        "tensor_type_counts": dict(sorted(Counter(types.values()).items())),
        "tensor_types": types,
        "stored_as": "float32",
        "gguf_version": importlib.metadata.version("gguf"),
        "seconds": round(seconds, 2),
    }


def _sha256(path: Path) -> str:
    """The file's SHA-256, hashed once per process while its size and modification time stay.

    A language-model run resolves its preset several times (tokenizer, model,
    manifest), and each resolution keys the cache by this digest.
    """
    stat = path.stat()
    return _hashed(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _hashed(path: str, size: int, mtime_ns: int) -> str:
    del size, mtime_ns  # the cache key: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _save_safetensors(weights: dict[str, np.ndarray], path: Path) -> None:
    from safetensors.numpy import save_file  # deferred: only a conversion needs it

    save_file(weights, str(path), metadata={"format": "pt"})


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def _install(tmp: Path, out_dir: Path, replace: bool) -> None:
    """Renames the finished `tmp` to `out_dir`.

    An existing `out_dir` is replaced; without `replace` a complete one is kept instead.
    """
    atomic.fsync_tree(tmp)
    old = None
    if out_dir.exists() and (replace or not is_complete(out_dir)):
        old = out_dir.with_name(atomic.temporary_name(out_dir.name))
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:  # a directory appeared there meanwhile: keep it if it is a finished conversion
        if not is_complete(out_dir):
            raise
        log.debug("%s was written meanwhile by another process; keeping that one", out_dir)
    atomic.fsync_dir(out_dir.parent)
    if old is not None:
        atomic.remove(old)
