"""GRU and LSTM encoders (`encoder.type` `gru`, `lstm`): stacked, optionally bidirectional."""

from __future__ import annotations

import keras
import numpy as np

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.models.encoders.registry import (
    EncoderBuilder,
    finish_encoder,
    register_encoder,
    resolve_pooling,
    token_embedding,
)
from qa_assistant.models.layers import MaskedPooling


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
