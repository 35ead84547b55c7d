"""A GRU or LSTM answer decoder with Bahdanau or Luong attention.

Training (teacher forcing, `call`) and generation (`start` + `step`) run the
same per-token function, `_advance`, so what the model learned is exactly
what the decoding loop runs: `call` loops it over the known answer inside
the graph, `step` runs it once per generated token.

The encoder's final state initialises every decoder layer, through a
`Dense` bridge when the widths differ (a bidirectional encoder's two
directions are concatenated first). An encoder without recurrent state (a
Transformer) starts the decoder from its pooled vector instead.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from qa_assistant.models.attention import BahdanauAttention, LuongAttention
from qa_assistant.models.layers import AnswerDecoder

CELLS = {"gru": keras.layers.GRUCell, "lstm": keras.layers.LSTMCell}
ATTENTIONS = ("bahdanau", "luong", "none")


@keras.saving.register_keras_serializable(package="qa_assistant")
class RecurrentDecoder(AnswerDecoder):
    """Recurrent decoder over an encoder's outputs (see `qa_assistant.models.decoders`).

    Args:
        vocabulary_size: target vocabulary size (rows of the output layer).
        embedding_dim: target token embedding width.
        units: recurrent state width.
        cell: `gru` or `lstm`.
        num_layers: stacked recurrent layers.
        attention: `bahdanau`, `luong` or `none`.
        dropout: dropout on the embedded inputs and on the outputs.
        encoder_states: how to read the encoder's `final_states`: `gru` (one
            tensor per direction), `lstm` (`h, c` per direction) or `none`
            (use `pooled_output`).

    Example:

    >>> import numpy as np
    >>> zeros = lambda *shape: np.zeros(shape, "float32")
    >>> encoded = {"sequence_output": zeros(1, 4, 6), "pooled_output": zeros(1, 6),
    ...            "padding_mask": np.ones((1, 4), bool), "final_states": [zeros(1, 6)]}
    >>> decoder = RecurrentDecoder(vocabulary_size=12, embedding_dim=4, units=6)
    >>> logits = decoder(np.array([[2, 5, 7]]), encoded)
    >>> tuple(logits.shape)
    (1, 3, 12)
    """

    def __init__(
        self,
        vocabulary_size: int,
        embedding_dim: int,
        units: int,
        cell: str = "gru",
        num_layers: int = 1,
        attention: str = "bahdanau",
        dropout: float = 0.0,
        encoder_states: str = "gru",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}")
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
        if encoder_states not in ("gru", "lstm", "none"):
            raise ValueError(f"encoder_states must be 'gru', 'lstm' or 'none'; got {encoder_states!r}")
        self.vocabulary_size = int(vocabulary_size)
        self.embedding_dim = int(embedding_dim)
        self.units = int(units)
        self.cell = cell
        self.num_layers = int(num_layers)
        self.attention = attention
        self.dropout = float(dropout)
        self.encoder_states = encoder_states

    # -- building ------------------------------------------------------------

    def build(self, decoder_ids_shape: Any = None, encoder_outputs_shape: Any = None) -> None:
        memory_dim = int(encoder_outputs_shape["sequence_output"][-1])
        h_dim, c_dim = self._state_widths(encoder_outputs_shape)
        policy = self.dtype_policy
        self.embedding = keras.layers.Embedding(
            self.vocabulary_size, self.embedding_dim, dtype=policy, name="token_embedding"
        )
        self.embedding.build((None, None))
        self.input_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="input_dropout")
        self.output_dropout = keras.layers.Dropout(self.dropout, dtype=policy, name="output_dropout")
        # Bridges exist only where the encoder's state cannot be used as it is.
        self.h_bridge = self._dense_if(h_dim != self.units, "tanh", "h_bridge", h_dim)
        self.c_bridge = self._dense_if(
            self.cell == "lstm" and c_dim not in (0, self.units), None, "c_bridge", c_dim
        )
        if self.attention == "bahdanau":
            self.attention_layer = BahdanauAttention(
                self.units, memory_dim, self.units, dtype=policy, name="attention"
            )
            step_input, output_dim = self.embedding_dim + memory_dim, self.units + memory_dim
        elif self.attention == "luong":
            self.attention_layer = LuongAttention(
                self.units, memory_dim, self.units, dtype=policy, name="attention"
            )
            self.combine = keras.layers.Dense(self.units, activation="tanh", dtype=policy, name="combine")
            self.combine.build((None, self.units + memory_dim))
            step_input, output_dim = self.embedding_dim + self.units, self.units
        else:
            step_input, output_dim = self.embedding_dim, self.units
        if self.attention != "none":
            self.attention_layer.build()
        self.cells = []
        for index in range(self.num_layers):
            cell = CELLS[self.cell](self.units, dtype=policy, name=f"{self.cell}_cell_{index}")
            cell.build((None, step_input if index == 0 else self.units))
            self.cells.append(cell)
        self.projection = keras.layers.Dense(self.vocabulary_size, dtype="float32", name="logits")
        self.projection.build((None, None, output_dim))
        self.built = True

    def _state_widths(self, encoder_outputs_shape: Any) -> tuple[int, int]:
        states = encoder_outputs_shape.get("final_states") or []
        if self.encoder_states == "none" or not states:
            return int(encoder_outputs_shape["pooled_output"][-1]), 0
        step = 2 if self.encoder_states == "lstm" else 1
        h_dim = sum(int(s[-1]) for s in states[::step])
        c_dim = sum(int(s[-1]) for s in states[1::2]) if step == 2 else 0
        return h_dim, c_dim

    def _dense_if(self, needed: bool, activation: str | None, name: str, in_dim: int) -> Any:
        if not needed:
            return None
        layer = keras.layers.Dense(self.units, activation=activation, dtype=self.dtype_policy, name=name)
        layer.build((None, in_dim))
        return layer

    # -- the decoder contract ------------------------------------------------

    def start(self, encoder_outputs: dict[str, Any], max_length: Any = None) -> tuple[Any, Any]:
        """`(state, memory)` before the first token; `max_length` is not needed here."""
        del max_length
        h, c = self._encoder_state(encoder_outputs)
        h = self.h_bridge(h) if self.h_bridge is not None else h
        if self.cell == "lstm":
            if c is None:
                c = ops.zeros_like(h)
            elif self.c_bridge is not None:
                c = self.c_bridge(c)
            layer_state = [h, c]
        else:
            layer_state = [h]
        state: dict[str, Any] = {"cells": [list(layer_state) for _ in range(self.num_layers)]}
        memory: dict[str, Any] = {}
        if self.attention != "none":
            values = encoder_outputs["sequence_output"]
            memory = {
                "values": values,
                "keys": self.attention_layer.keys(values),
                "mask": encoder_outputs["padding_mask"],
            }
        if self.attention == "luong":
            state["feed"] = ops.zeros_like(h)
        return state, memory

    def step(self, token_ids: Any, index: Any, state: Any, memory: Any) -> tuple[Any, Any]:
        """Logits `[batch, vocabulary]` for the token after `token_ids` `[batch]`, and the new state."""
        del index  # a recurrent state already knows where it is
        output, state = self._advance(self.embedding(token_ids), state, memory)
        return self.projection(output), state

    def call(self, decoder_ids: Any, encoder_outputs: dict[str, Any], training: bool | None = None) -> Any:
        """Teacher forcing: logits `[batch, length, vocabulary]` for decoder inputs `[batch, length]`."""
        state, memory = self.start(encoder_outputs)
        inputs = self.input_dropout(self.embedding(decoder_ids), training=training)
        time_major = tf.transpose(inputs, [1, 0, 2])
        length = tf.shape(time_major)[0]
        outputs = tf.TensorArray(time_major.dtype, size=length)

        def body(t: Any, state: Any, outputs: Any) -> tuple[Any, Any, Any]:
            output, state = self._advance(time_major[t], state, memory)
            return t + 1, state, outputs.write(t, output)

        # maximum_iterations lets XLA size the gradient's accumulators.
        _, _, outputs = tf.while_loop(
            lambda t, *_: t < length, body, (tf.constant(0), state, outputs), maximum_iterations=length
        )
        outputs = tf.transpose(outputs.stack(), [1, 0, 2])
        return self.projection(self.output_dropout(outputs, training=training))

    # -- one token -----------------------------------------------------------

    def _encoder_state(self, encoder_outputs: dict[str, Any]) -> tuple[Any, Any]:
        states = list(encoder_outputs.get("final_states") or [])
        if self.encoder_states == "none" or not states:
            return encoder_outputs["pooled_output"], None
        if self.encoder_states == "lstm":
            hs, cs = states[0::2], states[1::2]
        else:
            hs, cs = states, []
        h = hs[0] if len(hs) == 1 else ops.concatenate(hs, axis=-1)
        c = None if not cs else cs[0] if len(cs) == 1 else ops.concatenate(cs, axis=-1)
        return h, c

    def _advance(self, embedded: Any, state: dict[str, Any], memory: dict[str, Any]) -> tuple[Any, Any]:
        """One token: embedded input `[batch, embedding_dim]` -> output vector and new state."""
        cells = state["cells"]
        if self.attention == "bahdanau":
            # Bahdanau: attend with the state *before* this token.
            context, _ = self.attention_layer(cells[-1][0], memory["keys"], memory["values"], memory["mask"])
            x = ops.concatenate([embedded, context], axis=-1)
        elif self.attention == "luong":
            x = ops.concatenate([embedded, state["feed"]], axis=-1)  # input feeding
        else:
            x = embedded
        new_cells = []
        for cell, cell_state in zip(self.cells, cells, strict=True):
            x, new_state = cell(x, list(cell_state))
            new_cells.append(list(new_state))
        new: dict[str, Any] = {"cells": new_cells}
        if self.attention == "bahdanau":
            output = ops.concatenate([x, context], axis=-1)
        elif self.attention == "luong":
            # Luong: attend with the state *after* this token.
            context, _ = self.attention_layer(x, memory["keys"], memory["values"], memory["mask"])
            output = self.combine(ops.concatenate([x, context], axis=-1))
            new["feed"] = output
        else:
            output = x
        return output, new
