"""Small layers shared by the encoders, and the base of the answer decoders."""

from __future__ import annotations

import inspect
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
        pooled = ops.max(ops.where(mask > 0, inputs, lowest), axis=1, initial=lowest)  # initial: a batch of 0
        # A row with no real token (an empty request) pools to zeros, as its mean does.
        return ops.where(ops.sum(mask, axis=1) > 0, pooled, ops.zeros_like(pooled))

    def compute_mask(self, inputs: Any, mask: Any = None) -> None:
        return None

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="qa_assistant")
class CutSpare(keras.layers.Layer):
    """`inputs[:-1, :-1]`: removes the spare last row and position that were padded onto a
    `[batch, length, ...]` tensor (`encoders/cnn.py`).

    >>> import numpy as np
    >>> CutSpare()(np.zeros((3, 5, 2))).shape
    TensorShape([2, 4, 2])
    """

    def call(self, inputs: Any) -> Any:
        return inputs[:-1, :-1]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (None, None, *input_shape[2:])


class AnswerDecoder(keras.layers.Layer):
    """What the catalogue's decoders share: logits over the answer vocabulary at every position.

    A subclass keeps each named argument of its constructor as an attribute
    of the same name; `get_config` returns them, so a saved model rebuilds
    the decoder it was trained with.
    """

    vocabulary_size: int

    def compute_output_shape(self, decoder_ids_shape: Any, encoder_outputs_shape: Any = None) -> tuple:
        return (*tuple(decoder_ids_shape), self.vocabulary_size)

    def get_config(self) -> dict[str, Any]:
        names = inspect.signature(type(self).__init__).parameters
        arguments = [
            name for name, p in names.items() if name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
        ]
        return {**super().get_config(), **{name: getattr(self, name) for name in arguments}}
