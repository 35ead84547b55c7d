"""Freezing an encoder: all of it, its embeddings, or its embeddings and lowest N blocks.

`encoder.freeze` (`none`, `embedding`, `all` or N) is applied by every encoder builder;
`freeze_encoder` is also the API for code that loads weights into an
encoder first and freezes afterwards (e.g. `--init-from`).

Blocks are found by layer name, through nested models (a keras-hub backbone
inside the encoder): `transformer_layer_<i>` (keras-hub backbones),
`transformer_<i>` (the from-scratch Transformer), `gru_<i>` / `lstm_<i>` /
`bidirectional_<i>` (recurrent). Embedding layers are those whose name
contains `embedding` (token, position, segment embeddings, their layer norm
and projection).

Example:

>>> from qa_assistant.config import EmbeddingConfig, EncoderConfig
>>> from qa_assistant.models.encoders import build_encoder
>>> enc = build_encoder(EncoderConfig(type="gru", units=4, layers=2), 20, EmbeddingConfig(dim=4))
>>> freeze_encoder(enc, "1")
>>> [layer.name for layer in enc.layers if layer.weights and not layer.trainable]
['token_embedding', 'gru_0']
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import keras

from qa_assistant.errors import UserError

_BLOCK = re.compile(r"^(?:transformer_layer|transformer|gru|lstm|bidirectional)_(\d+)$")


def freeze_encoder(encoder: keras.Model, freeze: str | int) -> None:
    """Marks encoder weights as not trainable (call before `compile`).

    Args:
        encoder: an encoder from the catalogue (or a model holding one).
        freeze: `none`, `embedding` (the embeddings only), `all`, or N:
            the embeddings and blocks 0..N-1.

    Raises:
        UserError: N is larger than the number of blocks, or not a number.
    """
    spec = str(freeze).strip().lower()
    if spec == "none":
        return
    if spec == "all":
        encoder.trainable = False
        return
    if spec == "embedding":
        for layer in _walk(encoder):
            if "embedding" in layer.name:
                layer.trainable = False
        return
    if not spec.isdigit():
        raise UserError(
            f"encoder.freeze got {freeze!r}; expected none, embedding, all or a number of lower layers"
        )
    count = int(spec)
    layers = list(_walk(encoder))
    blocks = sorted({int(m.group(1)) for layer in layers if (m := _BLOCK.match(layer.name))})
    if count > len(blocks):
        raise UserError(f"encoder.freeze is {count}, but the encoder has {len(blocks)} layers")
    for layer in layers:
        match = _BLOCK.match(layer.name)
        if (match and int(match.group(1)) < count) or (count and "embedding" in layer.name):
            layer.trainable = False


def trainable_summary(encoder: keras.Model) -> tuple[int, int]:
    """`(trainable, total)` parameter counts, for logs."""
    trainable = sum(int(keras.ops.size(w)) for w in encoder.trainable_weights)
    total = sum(int(keras.ops.size(w)) for w in encoder.weights)
    return trainable, total


def _walk(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    for child in getattr(layer, "layers", []):
        yield child
        if isinstance(child, keras.Model):  # nested models, e.g. a keras-hub backbone
            yield from _walk(child)
