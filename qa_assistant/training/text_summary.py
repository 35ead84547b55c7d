"""A TensorBoard text table of sample predictions, written every epoch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

Predict = Callable[[keras.Model, list[str]], list[str]]


class SampleTable(keras.callbacks.Callback):
    """After each epoch, writes `question | reference | predicted` for fixed questions.

    The table is a 2-D string tensor, which TensorBoard's Text tab shows as a
    table; one step per epoch, so the answers can be followed as they learn.

    Args:
        log_dir: TensorBoard directory to write to (e.g. `RUN_DIR/logs/validation`).
        questions: the fixed questions.
        references: their reference answers (several joined by " | ").
        predict: `(model, questions) -> answers`, called after every epoch.
        tag: summary name.
    """

    def __init__(
        self,
        log_dir: str | Path,
        questions: Sequence[str],
        references: Sequence[str],
        predict: Predict,
        tag: str = "sample_answers",
    ) -> None:
        super().__init__()
        self.log_dir = str(log_dir)
        self.questions = list(questions)
        self.references = list(references)
        self.predict = predict
        self.tag = tag
        self._writer: Any = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if not self.questions:
            return
        answers = self.predict(self.model, self.questions)
        rows = [["question", "reference", "predicted"]]
        rows += [list(r) for r in zip(self.questions, self.references, answers, strict=True)]
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.text(self.tag, tf.constant(rows), step=epoch)
        self._writer.flush()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
