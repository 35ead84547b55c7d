"""The encoder catalogue: one builder per architecture, one shared signature.

A builder takes `(config, vocabulary_size, embedding, embedding_matrix)` and returns a
functional `keras.Model` named `encoder` that maps token ids `[batch, length]`
(0 = padding) to a dict:

* `sequence_output` `[batch, length, width]` — one vector per token;
* `pooled_output` `[batch, width]` — one vector per text;
* `padding_mask` `[batch, length]` — true on real tokens.

Recurrent encoders also return `final_states`, a list of the top layer's
final state tensors (used to initialise a decoder).

Catalogue: `gru`, `lstm` (here), `transformer` (`models/transformer.py`),
`pretrained` (`models/pretrained.py`). Every builder applies
`encoder.freeze` (`models/freezing.py`).

Example:

>>> from qa_assistant.config import EncoderConfig, EmbeddingConfig
>>> enc = build_encoder(EncoderConfig(type="gru", units=8), 50, EmbeddingConfig(dim=4))
>>> sorted(enc.output.keys())
['final_states', 'padding_mask', 'pooled_output', 'sequence_output']
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.errors import UserError, closest
from qa_assistant.models.freezing import freeze_encoder
from qa_assistant.models.layers import MaskedPooling

EncoderBuilder = Callable[[EncoderConfig, int, EmbeddingConfig, "np.ndarray | None"], keras.Model]

_CATALOGUE: dict[str, EncoderBuilder] = {}


def register_encoder(name: str) -> Callable[[EncoderBuilder], EncoderBuilder]:
    """Adds a builder to the catalogue under `name`."""

    def add(builder: EncoderBuilder) -> EncoderBuilder:
        _CATALOGUE[name] = builder
        return builder

    return add


def encoder_names() -> list[str]:
    """Names accepted by `encoder.type`."""
    return sorted(_CATALOGUE)


def get_encoder_builder(name: str) -> EncoderBuilder:
    """The builder for `name`; a `UserError` lists the known names otherwise."""
    if name not in _CATALOGUE:
        raise UserError(
            f"unknown encoder '{name}'{closest(name, encoder_names())}; "
            f"expected one of: {', '.join(encoder_names())}"
        )
    return _CATALOGUE[name]


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


def _recurrent(kind: str) -> EncoderBuilder:
    layer_class = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM}[kind]

    def build(
        config: EncoderConfig,
        vocabulary_size: int,
        embedding: EmbeddingConfig,
        embedding_matrix: np.ndarray | None = None,
    ) -> keras.Model:
        pooling = resolve_pooling(config, "last", ("last", "mean", "max"))
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        embed = token_embedding(vocabulary_size, embedding, embedding_matrix)
        x = embed(token_ids)
        if embedding.dropout:
            x = keras.layers.SpatialDropout1D(embedding.dropout, name="embedding_dropout")(x)
        mask = keras.ops.not_equal(token_ids, 0)
        states: list = []
        for index in range(config.layers):
            if config.dropout:
                x = keras.layers.Dropout(config.dropout, name=f"dropout_{index}")(x)
            rnn = layer_class(
                config.units,
                return_sequences=True,
                return_state=True,
                recurrent_dropout=config.recurrent_dropout,
                name=f"{kind}_{index}",
            )
            if config.bidirectional:
                outputs = keras.layers.Bidirectional(rnn, name=f"bidirectional_{index}")(x, mask=mask)
            else:
                outputs = rnn(x, mask=mask)
            x, states = outputs[0], list(outputs[1:])
        per_direction = 2 if kind == "lstm" else 1  # LSTM state = (h, c)
        hidden = states[::per_direction]  # the h of each direction
        if pooling == "last":
            pooled = hidden[0] if len(hidden) == 1 else keras.layers.Concatenate(name="pooled")(hidden)
        else:
            pooled = MaskedPooling(pooling, name="pooled")(x, padding_mask=mask)
        outputs = {
            "sequence_output": x,
            "pooled_output": pooled,
            "padding_mask": mask,
            "final_states": states,
        }
        return finish_encoder(token_ids, outputs, config)

    return build


register_encoder("gru")(_recurrent("gru"))
register_encoder("lstm")(_recurrent("lstm"))

# Registers `transformer` and `pretrained` (they import this module's helpers).
from qa_assistant.models import pretrained, transformer  # noqa: E402, F401
