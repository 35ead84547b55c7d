"""The encoder catalogue: one builder per architecture, one shared signature.

A builder takes `(config, vocabulary_size, embedding, embedding_matrix)` and returns a
functional `keras.Model` named `encoder` that maps token ids `[batch, length]`
(0 = padding) to a dict:

* `sequence_output` `[batch, length, width]` — one vector per token;
* `pooled_output` `[batch, width]` — one vector per text;
* `padding_mask` `[batch, length]` — true on real tokens.

Recurrent encoders also return `final_states`, a list of the top layer's
final state tensors (used to initialise a decoder).

Catalogue, one module per family: `gru`, `lstm` (`recurrent.py`), `cnn`
(`cnn.py`), `transformer` (`transformer.py`), `pretrained` (`pretrained.py`); the
registry and shared helpers are in `registry.py`. Every builder applies
`encoder.freeze` (`models/freezing.py`).

Example:

>>> from qa_assistant.config import EncoderConfig, EmbeddingConfig
>>> enc = build_encoder(EncoderConfig(type="gru", units=8), 50, EmbeddingConfig(dim=4))
>>> sorted(enc.output.keys())
['final_states', 'padding_mask', 'pooled_output', 'sequence_output']
"""

from qa_assistant.models.encoders import cnn, pretrained, recurrent, transformer  # registers the families
from qa_assistant.models.encoders.registry import (
    EncoderBuilder,
    build_encoder,
    encoder_names,
    finish_encoder,
    get_encoder_builder,
    register_encoder,
    resolve_pooling,
    token_embedding,
)

__all__ = [
    "EncoderBuilder",
    "build_encoder",
    "cnn",
    "encoder_names",
    "finish_encoder",
    "get_encoder_builder",
    "pretrained",
    "recurrent",
    "register_encoder",
    "resolve_pooling",
    "token_embedding",
    "transformer",
]
