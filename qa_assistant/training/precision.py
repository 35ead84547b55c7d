"""Mixed precision: which Keras dtype policy a model is built under.

Under a mixed policy layers compute in float16 or bfloat16 and keep float32
variables; every task builds its output layer with `dtype="float32"`, so
logits, losses and served scores stay float32. With `mixed_float16` Keras
wraps the optimizer in a `LossScaleOptimizer` at `compile`, so small
gradients do not underflow.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence

import keras

from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

_POLICIES = {"off": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def resolve_mixed_precision(setting: str, *, device_types: Sequence[str]) -> str:
    """The Keras dtype policy for `train.mixed_precision`.

    `auto` is `mixed_float16` on GPU (tensor cores), `mixed_bfloat16` on TPU
    (its native format) and `float32` on CPU, where half-precision math is
    emulated and slower.

    Args:
        setting: `auto`, `off`, `float16` or `bfloat16`.
        device_types: logical device types present (`CPU`, `GPU`, `TPU`).

    Returns:
        `float32`, `mixed_float16` or `mixed_bfloat16`.

    Example:

    >>> resolve_mixed_precision("auto", device_types=["CPU", "GPU"])
    'mixed_float16'
    >>> resolve_mixed_precision("auto", device_types=["CPU"])
    'float32'
    """
    if setting == "auto":
        if "TPU" in device_types:
            return "mixed_bfloat16"
        return "mixed_float16" if "GPU" in device_types else "float32"
    if setting not in _POLICIES:
        raise UserError(f"unknown mixed precision '{setting}'; expected one of: auto, {', '.join(_POLICIES)}")
    policy = _POLICIES[setting]
    if policy == "mixed_float16" and "GPU" not in device_types:
        log.warning("train.mixed_precision is float16 without a GPU: half-precision math is slow on CPU")
    return policy


@contextlib.contextmanager
def dtype_policy(policy: str) -> Iterator[None]:
    """Builds layers under `policy` inside the block; restores the previous global policy after.

    Keras keeps the policy in a global, so it is set only while the model is
    built; a built layer keeps its own policy (also when saved and loaded).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
