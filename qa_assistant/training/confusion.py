"""Confusion matrices of a classifier's predictions, counted and drawn as an image for TensorBoard.

With one class per distinct answer a matrix of every class would have
thousands of rows; only the most frequent reference classes are shown and
every other label (reference or prediction) is pooled as "other".
"""

from __future__ import annotations

import collections
import io
import warnings
from collections.abc import Sequence

import numpy as np

OTHER = "(other)"
_LABEL_CHARS = 28
_MARGIN = 2.1  # inches left of and below the matrix, for 28-character labels


def confusion_counts(
    references: Sequence[str], predicted: Sequence[str], max_classes: int
) -> tuple[list[str], np.ndarray]:
    """`(labels, counts)`: `counts[i, j]` = examples of reference `labels[i]` predicted as `labels[j]`.

    Args:
        references: the true class of each example.
        predicted: the predicted class of each example.
        max_classes: the most frequent reference classes kept (ties by
            name); the others, and predictions outside them, become `OTHER`.

    Returns:
        The labels (kept classes in frequency order, then `OTHER` if used)
        and an integer matrix of shape `[len(labels), len(labels)]`.

    Example:

    >>> labels, counts = confusion_counts(["a", "a", "b"], ["a", "b", "b"], max_classes=5)
    >>> labels, counts.tolist()
    (['a', 'b'], [[1, 1], [0, 1]])
    """
    frequency = collections.Counter(references)
    kept = sorted(frequency, key=lambda label: (-frequency[label], label))[:max_classes]
    kept_set = set(kept)
    refs = [r if r in kept_set else OTHER for r in references]
    preds = [p if p in kept_set else OTHER for p in predicted]
    labels = kept + ([OTHER] if OTHER in set(refs) | set(preds) else [])
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for r, p in zip(refs, preds, strict=True):
        counts[index[r], index[p]] += 1
    return labels, counts


def confusion_image(labels: Sequence[str], counts: np.ndarray, title: str) -> np.ndarray:
    """The matrix drawn as an RGBA image `[height, width, 4]` (uint8), rows normalised by reference.

    Colour is the share of each reference class's examples; the cells show
    the counts when the matrix is small enough to read them.
    """
    import matplotlib  # deferred: start-up time

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt  # deferred: start-up time

    n = len(labels)
    flat = [" ".join(label.split()) for label in labels]  # an answer's lines, one tick label
    shown = [label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…" for label in flat]
    # Fixed margins instead of tight_layout(), which doubles the drawing time.
    cells = max(0.3 * n, 2.5)
    width, height = _MARGIN + cells + 1.2, _MARGIN + cells + 0.4
    figure = plt.figure(figsize=(width, height), dpi=80)
    try:
        axes = figure.add_axes((_MARGIN / width, _MARGIN / height, cells / width, cells / height))
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
        image = axes.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
        bar = figure.add_axes(
            ((_MARGIN + cells + 0.15) / width, _MARGIN / height, 0.15 / width, cells / height)
        )
        figure.colorbar(image, cax=bar, label="share of the reference class")
        axes.set_xticks(range(n), shown, rotation=90, fontsize=8)
        axes.set_yticks(range(n), shown, fontsize=8)
        axes.set_xlabel("predicted")
        axes.set_ylabel("reference")
        axes.set_title(title, fontsize=9)
        if n <= 25:
            for i, j in zip(*np.nonzero(counts), strict=True):
                colour = "white" if share[i, j] > 0.5 else "black"
                axes.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7, color=colour)
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            # Labels in scripts the default font lacks (CJK, ...) draw as boxes; Matplotlib would
            # also warn once per missing character, in the middle of the training log.
            warnings.filterwarnings("ignore", message=r"Glyph \d+.*missing from")
            figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return _decode_png(buffer.getvalue())


def _decode_png(data: bytes) -> np.ndarray:
    import tensorflow as tf  # deferred: start-up time

    return tf.io.decode_png(data, channels=4).numpy()
