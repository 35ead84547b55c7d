"""Embeddings for TensorBoard's projector, written with `tensorboard.plugins.projector`.

Keras' `TensorBoard(embeddings_freq=...)` writes projector data that Keras 3
checkpoints do not match, so a run writes it itself after training, into
`RUN_DIR/logs/projector/`:

* `embeddings.ckpt-1.*` — a TensorFlow checkpoint with one variable per
  embedding (`<name>/.ATTRIBUTES/VARIABLE_VALUE`);
* `<name>.tsv` — one label per row (a word, an answer), in row order;
* `projector_config.pbtxt` — ties each tensor to its labels;
* an event file (a text summary of what is there), without which TensorBoard
  does not list the directory as a run and shows no Projector tab.

`tensorboard --logdir RUN_DIR` then shows them in the Projector tab, run
`logs/projector`.

Example:

>>> write_projector("runs/mine/logs", {"words": (matrix, vocabulary)})  # doctest: +SKIP
PosixPath('runs/mine/logs/projector')
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

log = logging.getLogger(__name__)

PROJECTOR_DIR = "projector"
MAX_VALUES = 5_000_000  # floats per embedding (20 MB); a pretrained model's 30k x 384 rows are skipped


def write_projector(
    log_dir: str | Path, embeddings: dict[str, tuple[np.ndarray, Sequence[str]]]
) -> Path | None:
    """Writes `embeddings` (name -> (matrix [rows, dim], one label per row)) for the projector.

    Embeddings larger than `MAX_VALUES` floats are left out (logged).

    Returns:
        The projector directory, or `None` when nothing was written.

    Raises:
        ValueError: a matrix and its labels differ in length.
    """
    kept = {}
    for name, (matrix, labels) in embeddings.items():
        if len(matrix) != len(labels):
            raise ValueError(f"embedding '{name}' has {len(matrix)} rows but {len(labels)} labels")
        if matrix.size > MAX_VALUES:
            log.info("projector: %s left out (%d x %d values is too large)", name, *matrix.shape)
            continue
        if len(matrix):
            kept[name] = (np.asarray(matrix, dtype=np.float32), labels)
    if not kept:
        return None
    directory = Path(log_dir) / PROJECTOR_DIR
    directory.mkdir(parents=True, exist_ok=True)
    variables = {name: tf.Variable(matrix, name=name) for name, (matrix, _) in kept.items()}
    checkpoint = tf.train.Checkpoint(**variables)
    # No model_checkpoint_path: TensorBoard takes the directory's latest checkpoint, wherever the run moves.
    checkpoint.save(str(directory / "embeddings.ckpt"))
    config = projector.ProjectorConfig()
    for name, (_, labels) in kept.items():
        (directory / f"{name}.tsv").write_text("".join(f"{_label(t)}\n" for t in labels), encoding="utf-8")
        entry = config.embeddings.add()
        entry.tensor_name = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
        entry.metadata_path = f"{name}.tsv"
    projector.visualize_embeddings(str(directory), config)
    _mark_as_run(directory, kept)
    log.info("projector: %s in %s", ", ".join(f"{n} ({len(m)})" for n, (m, _) in kept.items()), directory)
    return directory


def _mark_as_run(directory: Path, kept: dict[str, tuple[np.ndarray, Sequence[str]]]) -> None:
    """Writes one event file, so that TensorBoard lists the directory as a run.

    TensorBoard's projector only looks in directories it treats as runs (those
    holding an event file) and in the log directory itself; a directory with a
    config and a checkpoint alone never appears in the Projector tab.
    """
    writer = tf.summary.create_file_writer(str(directory))
    with writer.as_default():
        lines = [
            f"{name}: {matrix.shape[0]} rows x {matrix.shape[1]} dimensions"
            for name, (matrix, _) in kept.items()
        ]
        tf.summary.text("embeddings", "\n\n".join(lines), step=0)
    writer.close()


def _label(text: str) -> str:
    """One TSV cell: no tabs or line breaks, never empty (TensorBoard drops empty lines)."""
    text = " ".join(str(text).split())
    return text[:200] if text else "(empty)"
