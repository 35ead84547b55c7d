"""The encoder registry and the helpers every encoder family shares.

A family registers its builder with `@register_encoder(name)`; the
`models.encoders` package imports every family, so a name is known as soon
as the package is imported.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from qa_assistant.catalogue import Catalogue
from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.errors import UserError
from qa_assistant.models.freezing import freeze_encoder

EncoderBuilder = Callable[[EncoderConfig, int, EmbeddingConfig, "np.ndarray | None"], keras.Model]

CATALOGUE: Catalogue[EncoderBuilder] = Catalogue("encoder")
register_encoder = CATALOGUE.register  # decorator: adds a builder under a name
encoder_names = CATALOGUE.names  # names accepted by `encoder.type`
get_encoder_builder = CATALOGUE.get  # the builder of a name (UserError lists the known ones)


def build_encoder(
    config: EncoderConfig,
    vocabulary_size: int,
    embedding: EmbeddingConfig,
    embedding_matrix: np.ndarray | None = None,
) -> keras.Model:
    """Builds the encoder named by `config.type`.

    Args:
        config: architecture and sizes.
        vocabulary_size: rows of the token embedding.
        embedding: embedding size and trainability.
        embedding_matrix: optional initial embedding `[vocabulary_size, dim]`.
    """
    return get_encoder_builder(config.type)(config, vocabulary_size, embedding, embedding_matrix)


def resolve_pooling(config: EncoderConfig, default: str, allowed: tuple[str, ...]) -> str:
    """`encoder.pooling` for this architecture: `auto` becomes `default`.

    Raises:
        UserError: a pooling mode this architecture does not offer.
    """
    mode = default if config.pooling == "auto" else config.pooling
    if mode not in allowed:
        raise UserError(
            f"encoder.pooling '{config.pooling}' does not apply to a {config.type} encoder; "
            f"expected one of: auto, {', '.join(allowed)}"
        )
    return mode


def finish_encoder(token_ids: keras.KerasTensor, outputs: dict, config: EncoderConfig) -> keras.Model:
    """The `encoder` model of a builder's outputs, with `encoder.freeze` applied."""
    encoder = keras.Model(token_ids, outputs, name="encoder")
    freeze_encoder(encoder, config.freeze)
    return encoder


def token_embedding(
    vocabulary_size: int, embedding: EmbeddingConfig, matrix: np.ndarray | None
) -> keras.layers.Embedding:
    """The `token_embedding` layer shared by all word-level encoders."""
    initializer = keras.initializers.Constant(matrix) if matrix is not None else "uniform"
    return keras.layers.Embedding(
        vocabulary_size,
        embedding.dim,
        embeddings_initializer=initializer,
        mask_zero=True,
        trainable=embedding.trainable,
        name="token_embedding",
    )
