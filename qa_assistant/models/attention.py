"""Attention of a recurrent decoder over the encoder's token vectors.

Both layers split the work in two so that decoding stays cheap: `keys`
projects the encoder outputs once per question, and `call` scores one
decoder state against them at every step.

* `BahdanauAttention` (additive): `score = v . tanh(W_k h_i + W_q s)`.
* `LuongAttention` (multiplicative, "general"): `score = s . (W_k h_i)`.

Padded encoder positions get no weight.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

_NEG = -1e9  # masked scores: exp() underflows to exactly 0 in float32


class _Attention(keras.layers.Layer):
    """Shared parts: keys projection, masking, softmax and the weighted sum.

    Args:
        units: width of the keys (and of the additive hidden layer).
        memory_dim: width of the encoder vectors attended over.
        query_dim: width of the decoder state that asks.
    """

    def __init__(self, units: int, memory_dim: int, query_dim: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units = int(units)
        self.memory_dim = int(memory_dim)
        self.query_dim = int(query_dim)
        self.key_dense = keras.layers.Dense(self.units, use_bias=False, dtype=self.dtype_policy, name="keys")

    def build(self, input_shape: Any = None) -> None:
        self.key_dense.build((None, None, self.memory_dim))
        self.built = True

    def keys(self, memory: Any) -> Any:
        """Projects encoder outputs `[batch, length, memory_dim]` once per question."""
        if not self.built:
            self.build()
        return self.key_dense(memory)

    def scores(self, query: Any, keys: Any) -> Any:
        raise NotImplementedError

    def call(self, query: Any, keys: Any, values: Any, padding_mask: Any = None) -> tuple[Any, Any]:
        """Context `[batch, memory_dim]` and weights `[batch, length]` for one query `[batch, query_dim]`."""
        scores = self.scores(query, keys)
        if padding_mask is not None:
            scores = ops.where(padding_mask, scores, ops.cast(_NEG, scores.dtype))
        weights = ops.softmax(scores, axis=-1)
        context = ops.sum(ops.expand_dims(weights, -1) * values, axis=1)
        return context, weights

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "memory_dim": self.memory_dim,
            "query_dim": self.query_dim,
        }


@keras.saving.register_keras_serializable(package="qa_assistant")
class BahdanauAttention(_Attention):
    """Additive attention (Bahdanau et al., 2015).

    Example:

    >>> import numpy as np
    >>> attention = BahdanauAttention(units=4, memory_dim=6, query_dim=5)
    >>> memory = np.random.rand(2, 3, 6).astype("float32")
    >>> mask = np.array([[True, True, False], [True, False, False]])
    >>> context, weights = attention(np.ones((2, 5), "float32"), attention.keys(memory), memory, mask)
    >>> tuple(context.shape), [round(float(w), 6) for w in weights[1]]
    ((2, 6), [1.0, 0.0, 0.0])
    """

    def __init__(self, units: int, memory_dim: int, query_dim: int, **kwargs: Any) -> None:
        super().__init__(units, memory_dim, query_dim, **kwargs)
        self.query_dense = keras.layers.Dense(
            self.units, use_bias=True, dtype=self.dtype_policy, name="query"
        )

    def build(self, input_shape: Any = None) -> None:
        self.query_dense.build((None, self.query_dim))
        # A plain vector, not a Dense layer: a rank-3 Dense inside the
        # decoder's loop has shapes XLA cannot fix at compile time.
        self.score_vector = self.add_weight(shape=(self.units,), initializer="glorot_uniform", name="score")
        super().build(input_shape)

    def scores(self, query: Any, keys: Any) -> Any:
        hidden = ops.tanh(keys + ops.expand_dims(self.query_dense(query), 1))
        return ops.sum(hidden * self.score_vector, axis=-1)


@keras.saving.register_keras_serializable(package="qa_assistant")
class LuongAttention(_Attention):
    """Multiplicative ("general") attention (Luong et al., 2015).

    The keys are projected to the query's width, so `units` is the query
    width.

    Example:

    >>> import numpy as np
    >>> attention = LuongAttention(units=5, memory_dim=6, query_dim=5)
    >>> memory = np.random.rand(2, 3, 6).astype("float32")
    >>> context, weights = attention(np.ones((2, 5), "float32"), attention.keys(memory), memory)
    >>> tuple(context.shape), tuple(weights.shape)
    ((2, 6), (2, 3))
    """

    def __init__(self, units: int, memory_dim: int, query_dim: int, **kwargs: Any) -> None:
        if units != query_dim:
            raise ValueError(f"LuongAttention needs units == query_dim; got {units} and {query_dim}")
        super().__init__(units, memory_dim, query_dim, **kwargs)

    def scores(self, query: Any, keys: Any) -> Any:
        return ops.sum(keys * ops.expand_dims(query, 1), axis=-1)
