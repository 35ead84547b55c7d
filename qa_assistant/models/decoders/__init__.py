"""The decoder catalogue and the encoder-decoder model built from it.

A decoder builder takes `(config, encoder, vocabulary_size, embedding)` —
the `decoder` config section, the `encoder` section it will read from, the
target vocabulary size and the embedding section — and returns a Keras
layer that honours one contract:

* `decoder(decoder_ids, encoder_outputs)` -> logits `[batch, length,
  vocabulary]`: teacher forcing, where `encoder_outputs` is what any
  catalogue encoder returns (`sequence_output`, `padding_mask`,
  `pooled_output`, and `final_states` for recurrent encoders);
* `decoder.start(encoder_outputs, max_length)` -> `(state, memory)`: nested
  tensors with the batch first; `state` changes per token, `memory` not;
* `decoder.step(token_ids, index, state, memory)` -> `(logits [batch,
  vocabulary], state)`: one generated token at position `index`.

`qa_assistant.models.decoding.search` drives `start`/`step` for every
decoding strategy, in Python and inside an export alike.

Example:

>>> from qa_assistant.config import load_config
>>> model = build_seq2seq(load_config([], ["encoder.units=8", "embedding.dim=4"]), 30, 20)
>>> sorted(model.input), tuple(model.output.shape)
(['decoder_ids', 'token_ids'], (None, None, 20))
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from qa_assistant.catalogue import Catalogue
from qa_assistant.config import Config, DecoderConfig, EmbeddingConfig, EncoderConfig
from qa_assistant.errors import UserError
from qa_assistant.models.decoders.recurrent import RecurrentDecoder
from qa_assistant.models.decoders.transformer import TransformerAnswerDecoder
from qa_assistant.models.encoders import build_encoder
from qa_assistant.models.encoders.pretrained import check_token_limit

DecoderBuilder = Callable[[DecoderConfig, EncoderConfig, int, EmbeddingConfig], keras.layers.Layer]

CATALOGUE: Catalogue[DecoderBuilder] = Catalogue("decoder")
register_decoder = CATALOGUE.register  # decorator: adds a builder under a name
decoder_names = CATALOGUE.names  # names accepted by `decoder.type`
get_decoder_builder = CATALOGUE.get  # the builder of a name (UserError lists the known ones)


def build_decoder(
    config: DecoderConfig, encoder: EncoderConfig, vocabulary_size: int, embedding: EmbeddingConfig
) -> keras.layers.Layer:
    """Builds the decoder named by `config.type` (named `decoder`)."""
    return get_decoder_builder(config.type)(config, encoder, vocabulary_size, embedding)


def build_seq2seq(
    config: Config,
    source_vocabulary_size: int,
    target_vocabulary_size: int,
    embedding_matrix: np.ndarray | None = None,
) -> keras.Model:
    """The trainable encoder-decoder: `{token_ids, decoder_ids}` -> next-token logits.

    Its layers `encoder` (a catalogue encoder) and `decoder` (a catalogue
    decoder) are what generation calls.

    Args:
        config: the run's config (`encoder`, `decoder`, `embedding`).
        source_vocabulary_size: question vocabulary size.
        target_vocabulary_size: answer vocabulary size.
        embedding_matrix: optional initial question embedding.
    """
    encoder = build_encoder(config.encoder, source_vocabulary_size, config.embedding, embedding_matrix)
    check_token_limit(encoder, {"text.max_length": config.text.max_length}, config.encoder.preset)
    decoder = build_decoder(config.decoder, config.encoder, target_vocabulary_size, config.embedding)
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    decoder_ids = keras.Input(shape=(None,), dtype="int32", name="decoder_ids")
    logits = decoder(decoder_ids, encoder(token_ids))
    # float32 logits under a mixed-precision policy, as every task's outputs (loss, softmax).
    logits = keras.layers.Activation("linear", dtype="float32", name="logits")(logits)
    return keras.Model({"token_ids": token_ids, "decoder_ids": decoder_ids}, logits, name="seq2seq")


def _units(config: DecoderConfig, encoder: EncoderConfig) -> int:
    return config.units or encoder.units


def _recurrent(cell: str) -> DecoderBuilder:
    def build(
        config: DecoderConfig, encoder: EncoderConfig, vocabulary_size: int, embedding: EmbeddingConfig
    ) -> keras.layers.Layer:
        return RecurrentDecoder(
            vocabulary_size=vocabulary_size,
            embedding_dim=embedding.dim,
            units=_units(config, encoder),
            cell=cell,
            num_layers=config.layers,
            attention=config.attention,
            dropout=config.dropout,
            encoder_states=encoder.type if encoder.type in ("gru", "lstm") else "none",
            name="decoder",
        )

    return build


@register_decoder("transformer")
def _transformer(
    config: DecoderConfig, encoder: EncoderConfig, vocabulary_size: int, embedding: EmbeddingConfig
) -> keras.layers.Layer:
    units = _units(config, encoder)
    if units % config.heads:
        raise UserError(f"decoder width ({units}) must be divisible by decoder.heads ({config.heads})")
    return TransformerAnswerDecoder(
        vocabulary_size=vocabulary_size,
        width=units,
        num_layers=config.layers,
        heads=config.heads,
        intermediate_dim=config.intermediate_dim,
        dropout=config.dropout,
        max_length=config.max_length,
        name="decoder",
    )


register_decoder("gru")(_recurrent("gru"))
register_decoder("lstm")(_recurrent("lstm"))
