"""A convolutional encoder (`encoder.type: cnn`), after Kim (2014), "Convolutional Neural
Networks for Sentence Classification".

Token vectors go through parallel 1-D convolutions, one per width in
`encoder.kernel_sizes` (3, 4 and 5 words by default), each with
`encoder.units` filters and ReLU; the text vector is the maximum of each
filter over the real tokens (max-over-time pooling; `encoder.pooling: mean`
averages instead). Padding is zeroed before the convolutions and left out of
the pooling, so a padded batch gives every question the vector it gets alone.
Dropout on the text vector is the head's (`encoder.dropout`: Kim used 0.5);
word vectors may be random, trained or loaded (`embedding.pretrained`), as
for every word-level encoder.
"""

from __future__ import annotations

import keras
import numpy as np

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.models.encoders.registry import (
    finish_encoder,
    register_encoder,
    resolve_pooling,
    token_embedding,
)
from qa_assistant.models.layers import CutSpare, MaskedPooling


@register_encoder("cnn")
def build_cnn(
    config: EncoderConfig,
    vocabulary_size: int,
    embedding: EmbeddingConfig,
    embedding_matrix: np.ndarray | None = None,
) -> keras.Model:
    """The CNN encoder: `sequence_output` is every width's feature maps side by side
    (`[batch, length, units * widths]`), `pooled_output` their max over real tokens."""
    pooling = resolve_pooling(config, "max", ("max", "mean"))
    widths = kernel_sizes(config)
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    mask = keras.ops.not_equal(token_ids, 0)
    x = token_embedding(vocabulary_size, embedding, embedding_matrix)(token_ids)
    if embedding.dropout:
        x = keras.layers.SpatialDropout1D(embedding.dropout, name="embedding_dropout")(x)
    # Padding positions become zero vectors: the convolutions see what Kim's zero padding gives.
    x = keras.layers.Multiply(name="zero_padding")(
        [x, keras.ops.expand_dims(keras.ops.cast(mask, x.dtype), -1)]
    )
    # One spare zero row and position, cut off again: TensorFlow's convolution given a batch of
    # no rows or no tokens returns its input's shape (a request batch may be empty, and a batch
    # of empty requests has no tokens). A zero position is what "same" padding adds anyway.
    x = keras.ops.pad(x, [[0, 1], [0, 1], [0, 0]])
    maps = [
        keras.layers.Conv1D(config.units, width, padding="same", activation="relu", name=f"conv_{width}")(x)
        for width in widths
    ]
    sequence = maps[0] if len(maps) == 1 else keras.layers.Concatenate(name="feature_maps")(maps)
    sequence = CutSpare(name="cut_spare")(sequence)
    pooled = MaskedPooling(pooling, name="pooled")(sequence, padding_mask=mask)
    outputs = {"sequence_output": sequence, "pooled_output": pooled, "padding_mask": mask}
    return finish_encoder(token_ids, outputs, config)


def kernel_sizes(config: EncoderConfig) -> list[int]:
    """`encoder.kernel_sizes` (`"3,4,5"`) as a list of widths."""
    return [int(width) for width in str(config.kernel_sizes).split(",")]
