"""A keras-hub causal LM as a decoder of the project's decoding loop, with a key/value cache.

`models/decoding.py`'s `search` drives a decoder through `start` (once) and
`step` (once per generated token); greedy, beam and sampling and the
repetition guards all live there. `CachedCausalLM` adapts a Llama-family
`keras_hub` causal LM to that interface:

* prompts are **left-padded** so that every row's answer starts at the same
  position, which the loop requires (it writes token `step` of every row at
  once). Llama's rotary position embedding makes attention depend on the
  distance between tokens only, so the padding shifts nothing; padded keys
  are masked out of every attention;
* `start` runs the prompt but its last token through the model once,
  filling the cache (`[batch, layers, 2, positions, kv heads, head dim]`);
* `step` feeds one token (at step 0 the prompt's last token, which is the
  same for every prompt: the newline after `assistant`) and attends over
  the cache, so a step costs one token's work instead of the whole sequence's.

The cache is the decoding state: beam search reorders it by parent
hypothesis like any other state.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class CachedCausalLM:
    """`search`'s decoder interface over a keras-hub causal LM (Llama family).

    Args:
        causal_lm: a keras-hub `CausalLM` whose backbone has
            `token_embedding`, `transformer_layers` and `layer_norm`.
        last_prompt_id: the id that ends every prompt.
    """

    def __init__(self, causal_lm: keras.Model, last_prompt_id: int) -> None:
        self.backbone = causal_lm.backbone
        self.last_prompt_id = last_prompt_id
        self._prefix_length: tf.Tensor | None = None

    def empty_cache(self, rows: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
        """Zeros of the cache's shape for `rows` sequences of `positions` tokens."""
        backbone = self.backbone
        head_dim = backbone.hidden_dim // backbone.num_query_heads
        shape = [rows, backbone.num_layers, 2, positions, backbone.num_key_value_heads, head_dim]
        return tf.zeros(shape, dtype=backbone.compute_dtype)

    def run(
        self, token_ids: tf.Tensor, cache: tf.Tensor, index: tf.Tensor, key_mask: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Logits of `token_ids` (written at cache position `index` on) and the updated cache.

        Args:
            token_ids: `[batch, n]`.
            cache: `[batch, layers, 2, positions, kv heads, head dim]`.
            index: cache position of `token_ids[:, 0]`.
            key_mask: `[batch, positions]`, false for padding.
        """
        backbone = self.backbone
        x = backbone.token_embedding(token_ids)
        queries = tf.shape(token_ids)[1]
        attention = tf.tile(tf.cast(key_mask, "int32")[:, None, :], [1, queries, 1])
        layers = []
        for i, layer in enumerate(backbone.transformer_layers):
            x, updated = layer(
                x,
                decoder_attention_mask=attention,
                self_attention_cache=cache[:, i],
                self_attention_cache_update_index=index,
            )
            layers.append(updated)
        logits = backbone.token_embedding(backbone.layer_norm(x), reverse=True)
        return logits, tf.stack(layers, axis=1)

    def start(self, encoder_outputs: dict[str, tf.Tensor], length: tf.Tensor) -> tuple[Any, Any]:
        """Caches the prompts (`token_ids`, left-padded, with `padding_mask`) but their last token.

        Returns `(state, memory)`: the cache, and the key mask over all
        `prompt length - 1 + length` positions (generated positions are real).
        """
        token_ids = tf.cast(encoder_outputs["token_ids"], tf.int32)
        mask = tf.cast(encoder_outputs["padding_mask"], tf.bool)
        rows = tf.shape(token_ids)[0]
        prefix = tf.shape(token_ids)[1] - 1
        self._prefix_length = prefix
        positions = prefix + tf.maximum(length, 1)
        key_mask = tf.concat([mask[:, :prefix], tf.ones([rows, positions - prefix], tf.bool)], axis=1)
        cache = self.empty_cache(rows, positions)
        _, cache = self.run(token_ids[:, :prefix], cache, tf.constant(0), key_mask)
        return cache, key_mask

    def step(
        self, previous: tf.Tensor, step: tf.Tensor, state: tf.Tensor, memory: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor]:
        """Next-token logits `[rows, vocabulary]` after `previous` (the prompt's last token at step 0)."""
        token = tf.where(step == 0, self.last_prompt_id, tf.cast(previous, tf.int32))
        logits, cache = self.run(token[:, None], state, self._prefix_length + step, memory)
        return logits[:, 0], cache


def left_pad(ids: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor]:
    """`(ids, padding_mask)` `[batch, longest]` with the padding (0) before each row's ids.

    >>> ids, mask = left_pad(tf.ragged.constant([[5, 6, 7], [8]]))
    >>> ids.numpy().tolist(), mask.numpy().astype(int).tolist()
    ([[5, 6, 7], [0, 0, 8]], [[1, 1, 1], [0, 0, 1]])
    """
    right = ids.to_tensor(0)
    lengths = ids.row_lengths()
    width = tf.shape(right, out_type=tf.int64)[1]
    mask = tf.range(width)[None, :] >= (width - lengths)[:, None]
    # Each row's ids backwards, then the whole row backwards: padding first, ids in order.
    backwards = tf.reverse_sequence(right, lengths, seq_axis=1, batch_axis=0)
    return tf.reverse(backwards, axis=[1]), mask
