"""tf.data input pipelines: token ids in, padded (bucketed) batches out.

Texts are tokenised once, vectorised over the whole split, and sliced into a
dataset; batches group texts of similar length (`bucket_by_sequence_length`)
and are padded to a small set of lengths, so a batch is not padded to the
longest text in the data and XLA compiles only a few shapes. Padding is
always appended (right-aligned ids), as the fused cuDNN kernel requires.

The per-example conversion runs in parallel once and is cached; batches are
prefetched while the model trains. Order is deterministic: the parallel map
keeps it, and the shuffle is seeded (a new, repeatable order every epoch).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

AUTOTUNE = tf.data.AUTOTUNE


def bucket_lengths(max_length: int) -> list[int]:
    """Padded lengths used for batching: multiples of 8 up to 32, then powers of two.

    >>> bucket_lengths(32)
    [8, 16, 24, 32]
    >>> bucket_lengths(100)
    [8, 16, 24, 32, 64, 100]
    """
    lengths = [n for n in (8, 16, 24, 32) if n < max_length]
    n = 64
    while n < max_length:
        lengths.append(n)
        n *= 2
    return [*lengths, max_length]


def _dense(features: Any, targets: Any) -> tuple[Any, Any]:
    # Slices of a RaggedTensor arrive as ragged_rank-0 values; make them plain tensors.
    convert = tf.nest.map_structure
    return convert(tf.convert_to_tensor, features), convert(tf.convert_to_tensor, targets)


def _longest(ragged: list[bool]) -> Any:
    """The length of an example: its longest variable-length (ragged) component."""

    def length(*example: Any) -> tf.Tensor:
        parts = [tf.shape(t)[0] for t, r in zip(tf.nest.flatten(example), ragged, strict=True) if r]
        return tf.reduce_max(tf.stack(parts))

    return length


def make_dataset(
    features: Any,
    targets: Any,
    *,
    batch_size: int,
    max_length: int,
    shuffle: bool = False,
    seed: int | None = None,
    bucket: bool = True,
) -> tf.data.Dataset:
    """A batched dataset of `(features, targets)`.

    Every variable-length component (a `tf.RaggedTensor`: question ids, or a
    generator's decoder inputs and targets) is padded with 0 to the same
    bucket length in a batch: the bucket of the example's longest component.

    Args:
        features: `[examples, (length)]` ids, 0 = padding, or a nested
            structure (e.g. a dict such as `{"question": ..., "answer": ...}`)
            of such ids and per-example arrays.
        targets: array or nested structure of arrays with one row per example;
            variable-length rows may be ragged.
        batch_size: examples per batch.
        max_length: longest possible row of any ragged component.
        shuffle: reshuffle every epoch (seeded, so runs repeat exactly).
        seed: shuffle seed.
        bucket: group by length and pad to `bucket_lengths`; else keep order
            and pad to the longest row of each batch.
    """
    flat = tf.nest.flatten((features, targets), expand_composites=False)
    count = int(flat[0].nrows() if isinstance(flat[0], tf.RaggedTensor) else flat[0].shape[0])
    ragged = [isinstance(t, tf.RaggedTensor) for t in flat]
    ds = tf.data.Dataset.from_tensor_slices((features, targets))
    ds = ds.map(_dense, num_parallel_calls=AUTOTUNE, deterministic=True).cache()
    if shuffle:
        ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if bucket:
        lengths = bucket_lengths(max_length)
        ds = ds.bucket_by_sequence_length(
            _longest(ragged),
            bucket_boundaries=[n + 1 for n in lengths],
            bucket_batch_sizes=[batch_size] * (len(lengths) + 1),
            pad_to_bucket_boundary=True,
        )
    else:
        ds = ds.padded_batch(batch_size)
    return ds.prefetch(AUTOTUNE).with_options(_deterministic())


def _deterministic() -> tf.data.Options:
    options = tf.data.Options()
    options.deterministic = True  # the default, stated: nothing below may trade order for speed
    return options


def ids_dataset(
    token_ids: tf.RaggedTensor, *, batch_size: int, max_length: int | None = None
) -> tf.data.Dataset:
    """Batches of ids only, in order (for prediction).

    With `max_length`, each batch is padded up to the next of
    `bucket_lengths(max_length)`, so a compiled predict step sees few shapes.
    """
    ds = tf.data.Dataset.from_tensor_slices(token_ids).map(
        tf.convert_to_tensor, num_parallel_calls=AUTOTUNE, deterministic=True
    )
    ds = ds.padded_batch(batch_size)
    if max_length is not None:
        lengths = tf.constant(bucket_lengths(max_length))

        def pad_to_bucket(ids: tf.Tensor) -> tf.Tensor:
            width = tf.shape(ids)[1]
            target = lengths[tf.argmax(tf.cast(lengths >= width, tf.int32))]
            return tf.pad(ids, [[0, 0], [0, target - width]])

        ds = ds.map(pad_to_bucket)
    return ds.prefetch(AUTOTUNE).with_options(_deterministic())


def as_targets(values: np.ndarray) -> tf.Tensor:
    """Class ids as int32 (what sparse cross-entropy expects)."""
    return tf.constant(np.asarray(values, dtype=np.int32))
