"""A Transformer answer decoder from keras-hub layers, with cached step decoding.

Token + learned position embeddings feed a stack of keras-hub
`TransformerDecoder` blocks (causal self-attention, cross-attention over the
encoder's token vectors, feed-forward). For generation the self-attention
keys/values of earlier tokens are kept in a cache, and the encoder's
cross-attention keys/values are projected once per question, so each new
token costs one position's work.
"""

from __future__ import annotations

from typing import Any

import keras
import keras_hub
import tensorflow as tf
from keras import ops

from qa_assistant.models.layers import AnswerDecoder


@keras.saving.register_keras_serializable(package="qa_assistant")
class TransformerAnswerDecoder(AnswerDecoder):
    """Transformer decoder over an encoder's outputs (see `qa_assistant.models.decoders`).

    Args:
        vocabulary_size: target vocabulary size.
        width: model width (embedding and attention size).
        num_layers: stacked decoder blocks.
        heads: attention heads (must divide `width`).
        intermediate_dim: feed-forward width.
        dropout: dropout in every block and on the embedded inputs.
        max_length: positions the decoder can embed (tokens per answer).

    Example:

    >>> import numpy as np
    >>> decoder = TransformerAnswerDecoder(vocabulary_size=12, width=8, heads=2, max_length=6)
    >>> memory = {"sequence_output": np.zeros((1, 4, 8), "float32"), "padding_mask": np.ones((1, 4), bool)}
    >>> tuple(decoder(np.array([[2, 5, 7]]), memory).shape)
    (1, 3, 12)
    """

    def __init__(
        self,
        vocabulary_size: int,
        width: int,
        num_layers: int = 1,
        heads: int = 4,
        intermediate_dim: int | None = None,
        dropout: float = 0.0,
        max_length: int = 48,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if width % heads:
            raise ValueError(f"width must be divisible by heads; got width={width}, heads={heads}")
        self.vocabulary_size = int(vocabulary_size)
        self.width = int(width)
        self.num_layers = int(num_layers)
        self.heads = int(heads)
        self.intermediate_dim = int(intermediate_dim or 2 * width)
        self.dropout = float(dropout)
        self.max_length = int(max_length)

    @property
    def max_positions(self) -> int:
        """Longest answer the position embedding covers."""
        return self.max_length

    def build(self, decoder_ids_shape: Any = None, encoder_outputs_shape: Any = None) -> None:
        memory_dim = int(encoder_outputs_shape["sequence_output"][-1])
        policy = self.dtype_policy
        self.embedding = keras_hub.layers.TokenAndPositionEmbedding(
            self.vocabulary_size,
            self.max_length,
            self.width,
            dtype=policy,
            name="token_and_position_embedding",
        )
        self.embedding.build((None, None))
        self.input_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="input_dropout")
        self.blocks = []
        for index in range(self.num_layers):
            block = keras_hub.layers.TransformerDecoder(
                intermediate_dim=self.intermediate_dim,
                num_heads=self.heads,
                dropout=self.dropout,
                dtype=policy,
                name=f"transformer_decoder_{index}",
            )
            block.build((None, None, self.width), (None, None, memory_dim))
            self.blocks.append(block)
        self.projection = keras.layers.Dense(self.vocabulary_size, dtype="float32", name="logits")
        self.projection.build((None, None, self.width))
        self.built = True

    def call(self, decoder_ids: Any, encoder_outputs: dict[str, Any], training: bool | None = None) -> Any:
        """Teacher forcing: logits `[batch, length, vocabulary]` (causal: position t sees tokens <= t).

        A batch may be padded past `max_length` (to the bucket of a long
        question); those padding positions reuse the last position vector.
        """
        positions = ops.minimum(ops.arange(ops.shape(decoder_ids)[1]), self.max_length - 1)
        x = self.input_dropout(self.embedding(decoder_ids, positions=positions), training=training)
        memory, mask = _unmasked(encoder_outputs["sequence_output"]), encoder_outputs["padding_mask"]
        for block in self.blocks:
            x = block(x, memory, encoder_padding_mask=mask, training=training)
        return self.projection(x)

    def start(self, encoder_outputs: dict[str, Any], max_length: Any) -> tuple[Any, Any]:
        """`(state, memory)`: an empty self-attention cache for `max_length` tokens, and cross keys/values."""
        values = _unmasked(encoder_outputs["sequence_output"])
        batch = ops.shape(values)[0]
        head_dim = self.width // self.heads
        cache = ops.zeros(
            (batch, self.num_layers, 2, max_length, self.heads, head_dim), dtype=self.compute_dtype
        )
        # Projected once per question, as keras-hub's own seq2seq models do.
        cross = [
            ops.stack(
                [
                    block._cross_attention_layer._key_dense(values),
                    block._cross_attention_layer._value_dense(values),
                ],
                axis=1,
            )
            for block in self.blocks
        ]
        memory = {
            "values": values,
            "mask": encoder_outputs["padding_mask"],
            "cross": ops.stack(cross, axis=1),
        }
        return {"cache": cache}, memory

    def step(self, token_ids: Any, index: Any, state: Any, memory: Any) -> tuple[Any, Any]:
        """Logits `[batch, vocabulary]` for the token after `token_ids` (at position `index`)."""
        x = self.embedding(ops.expand_dims(token_ids, 1), start_index=index)
        caches = []
        for layer, block in enumerate(self.blocks):
            x, cache, _ = block(
                x,
                memory["values"],
                encoder_padding_mask=memory["mask"],
                self_attention_cache=state["cache"][:, layer],
                self_attention_cache_update_index=index,
                cross_attention_cache=memory["cross"][:, layer],
                cross_attention_cache_update_index=None,
            )
            caches.append(cache)
        return self.projection(x[:, 0]), {"cache": ops.stack(caches, axis=1)}


def _unmasked(values: Any) -> Any:
    """A copy without the Keras mask a recurrent encoder attaches to its outputs.

    The padding mask is passed explicitly; left attached, the attention's
    projections warn that they drop it.
    """
    return tf.identity(values)
