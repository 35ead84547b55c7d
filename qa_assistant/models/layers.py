"""Small layers shared by the encoders."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

POOLING_MODES = ("last", "mean", "max", "first")


@keras.saving.register_keras_serializable(package="qa_assistant")
class MaskedPooling(keras.layers.Layer):
    """Pools `[batch, length, width]` over real (unmasked) positions to `[batch, width]`.

    Args:
        mode: `mean`, `max` or `first` (the first position, e.g. a `[CLS]`
            token).

    Example:

    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]])
    >>> mask = np.array([[True, True, False]])
    >>> float(MaskedPooling("mean")(x, mask)[0, 0]), float(MaskedPooling("max")(x, mask)[0, 0])
    (2.0, 3.0)
    """

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("mean", "max", "first"):
            raise ValueError(f"mode must be 'mean', 'max' or 'first'; got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs: Any, padding_mask: Any = None) -> Any:
        if self.mode == "first":
            return inputs[:, 0, :]
        if padding_mask is None:
            padding_mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        mask = ops.cast(ops.expand_dims(padding_mask, -1), inputs.dtype)
        if self.mode == "mean":
            total = ops.sum(inputs * mask, axis=1)
            return total / ops.maximum(ops.sum(mask, axis=1), 1.0)
        lowest = ops.cast(-1e9, inputs.dtype)
        return ops.max(ops.where(mask > 0, inputs, lowest), axis=1)

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
