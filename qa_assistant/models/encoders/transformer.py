"""`encoder.type: transformer` — a Transformer encoder trained from scratch.

keras-hub's `TokenAndPositionEmbedding` (learned token and position vectors)
followed by `encoder.layers` `TransformerEncoder` blocks of width
`encoder.units`, `encoder.heads` attention heads and a feed-forward layer of
`encoder.intermediate_dim`. Padding (id 0) is masked in attention and in
pooling, so padding a text does not change its vector.

Config keys used: `units`, `layers`, `heads`, `intermediate_dim`, `dropout`,
`max_positions`, `pooling` (`mean` by default, `max`, or `first`), `freeze`;
`embedding.dim` (projected to `units` when different), `embedding.dropout`,
`embedding.trainable`, `embedding.pretrained` (word vectors for the token
embedding).

Example:

>>> from qa_assistant.config import EmbeddingConfig, EncoderConfig
>>> from qa_assistant.models.encoders import build_encoder
>>> config = EncoderConfig(type="transformer", units=8, heads=2, intermediate_dim=16, max_positions=8)
>>> enc = build_encoder(config, 30, EmbeddingConfig(dim=8))
>>> tuple(enc(np.array([[3, 4, 0]], dtype="int32"))["pooled_output"].shape)
(1, 8)
"""

from __future__ import annotations

import keras
import keras_hub
import numpy as np

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.models.encoders.registry import finish_encoder, register_encoder, resolve_pooling
from qa_assistant.models.layers import MaskedPooling


@register_encoder("transformer")
def build_transformer(
    config: EncoderConfig,
    vocabulary_size: int,
    embedding: EmbeddingConfig,
    embedding_matrix: np.ndarray | None = None,
) -> keras.Model:
    """Builds the from-scratch Transformer encoder (see the module docstring)."""
    pooling = resolve_pooling(config, "mean", ("mean", "max", "first"))
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    embed = keras_hub.layers.TokenAndPositionEmbedding(
        vocabulary_size,
        config.max_positions,
        embedding.dim,
        name="token_and_position_embedding",  # padding is masked explicitly below
    )
    x = embed(token_ids)
    if embedding_matrix is not None:
        embed.token_embedding.embeddings.assign(np.asarray(embedding_matrix, dtype="float32"))
    embed.token_embedding.trainable = embedding.trainable
    if embedding.dim != config.units:
        x = keras.layers.Dense(config.units, name="embedding_projection")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-5, name="embedding_norm")(x)
    if embedding.dropout or config.dropout:
        x = keras.layers.Dropout(max(embedding.dropout, config.dropout), name="embedding_dropout")(x)
    mask = keras.ops.not_equal(token_ids, 0)
    for index in range(config.layers):
        x = keras_hub.layers.TransformerEncoder(
            intermediate_dim=config.intermediate_dim,
            num_heads=config.heads,
            dropout=config.dropout,
            activation="gelu",
            name=f"transformer_{index}",
        )(x, padding_mask=mask)
    pooled = MaskedPooling(pooling, name="pooled")(x, padding_mask=mask)
    outputs = {"sequence_output": x, "pooled_output": pooled, "padding_mask": mask}
    return finish_encoder(token_ids, outputs, config)
