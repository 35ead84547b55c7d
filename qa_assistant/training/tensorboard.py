"""What a run writes to TensorBoard besides Keras' own curves.

Every run directory is one session of TensorBoard's HParams dashboard, so a
directory holding several runs (a sweep, the folds of a k-fold run) compares
them side by side::

    RUN_DIR/logs/              HParams session: the run's config as hyper-parameters;
                               best/<metric> (the best epoch's validation metrics, by
                               train.monitor) after every epoch; test/<metric> at the end;
                               the test split's confusion matrix (classification)
    RUN_DIR/logs/train/        Keras: epoch_loss, the task's accuracy (epoch_accuracy; retrieval
                               epoch_in_batch_accuracy; generation epoch_token_accuracy),
                               ..., epoch_learning_rate
    RUN_DIR/logs/validation/   Keras: the same on validation; sample_predictions (text table
                               of fixed validation questions, every epoch); confusion_matrix
                               (classification, every epoch)

HParams shows the *last* value of a metric, so `best/…` is written as the
best value so far at every epoch. Sessions whose configs differ only in
`data.fold` and `train.seed` form one session group, which the dashboard
aggregates (mean by default).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.config import Config
from qa_assistant.data.split import Splits
from qa_assistant.embeddings.projector import write_projector
from qa_assistant.layout import LOGS_DIR
from qa_assistant.tasks import Task
from qa_assistant.training.callbacks import is_better, loss_key, lower_is_better
from qa_assistant.training.confusion import confusion_counts, confusion_image

# Config sections that do not change what a model learns: left out of the hyper-parameters.
_NOT_HPARAMS = ("export.", "tensorboard.")
# Keys that vary between repeats of one configuration: not part of its session group.
REPEAT_KEYS = ("data.fold", "train.seed")
SAMPLES_TAG = "sample_predictions"
CONFUSION_TAG = "confusion_matrix"
SAMPLE_COLUMNS = ("question", "reference", "predicted", "score", "correct")

Predict = Callable[[keras.Model, pd.DataFrame], pd.DataFrame]


def hparams_of(config: Config) -> dict[str, bool | float | str]:
    """The run's hyper-parameters for HParams: every config leaf that shapes the model.

    Values are bool, number or string (`None` becomes `"none"`).
    """
    out: dict[str, bool | float | str] = {}
    for key, value in config.flat().items():
        if key.startswith(_NOT_HPARAMS):
            continue
        if value is None:
            value = "none"
        elif not isinstance(value, bool | int | float | str):
            value = json.dumps(value)
        out[key] = value
    return out


def session_group(hparams: dict[str, Any]) -> str:
    """A name shared by runs whose hyper-parameters differ only in `REPEAT_KEYS`."""
    fixed = {k: v for k, v in sorted(hparams.items()) if k not in REPEAT_KEYS}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()[:16]


class _Writer:
    """A summary writer opened on first use, flushed after every write batch."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = str(log_dir)
        self._writer: Any = None

    def __enter__(self) -> Any:
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._context = self._writer.as_default()
        self._context.__enter__()
        return self._writer

    def __exit__(self, *exc: Any) -> None:
        self._context.__exit__(*exc)
        # Flushed before the resume snapshot, so a restart keeps exactly these events.
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class BestMetrics(keras.callbacks.Callback):
    """Opens the run's HParams session and logs the best epoch's metrics after every epoch.

    The best epoch is the one with the best `monitor` value (lowest for a
    loss, highest otherwise; a tie goes to the lower loss of the same split:
    `callbacks.is_better`, as in early stopping and the best checkpoint). Its
    metrics of the same split as `monitor` are written as `best/<name>`
    with `best/epoch` (1-based). Stateful for `TrainingState`: after a
    restart the best epoch and the session survive.

    Args:
        log_dir: the session directory (`RUN_DIR/logs`).
        hparams: `hparams_of(config)`.
        monitor: the watched metric (`train.monitor`, e.g. `val_loss`, or `loss` without validation).
        start_from_epoch: epochs (0-based) before this one are never the best
            (`train.monitor_from_epoch`, as early stopping counts them).

    Example:

    >>> BestMetrics(run_dir / "logs", hparams_of(config), "val_accuracy")  # doctest: +SKIP
    """

    resume_key = "best_metrics"

    def __init__(
        self, log_dir: str | Path, hparams: dict[str, Any], monitor: str, start_from_epoch: int = 0
    ) -> None:
        super().__init__()
        self.start_from_epoch = start_from_epoch
        self.writer = _Writer(log_dir)
        self.hparams = dict(hparams)
        self.monitor = monitor
        self.lower_is_better = lower_is_better(monitor)
        self.session_written = False
        self.best: float | None = None
        self.best_loss: float | None = None
        self.best_epoch = -1
        self.best_logs: dict[str, float] = {}

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # Not in on_train_begin: a resumed run's state is restored after that.
        if self.session_written:
            return
        from tensorboard.plugins.hparams import api as hp  # deferred: start-up time

        with self.writer:
            hp.hparams(self.hparams, trial_id=session_group(self.hparams), start_time_secs=int(time.time()))
        self.session_written = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        if self.monitor not in logs or epoch < self.start_from_epoch:
            return
        value = float(logs[self.monitor])
        loss = logs.get(loss_key(self.monitor))
        loss = None if loss is None else float(loss)
        if is_better(value, loss, self.best, self.best_loss, lower_is_better=self.lower_is_better):
            validation = self.monitor.startswith("val_")
            self.best, self.best_loss, self.best_epoch = value, loss, epoch
            self.best_logs = {
                k: float(v)
                for k, v in logs.items()
                if np.ndim(v) == 0 and k.startswith("val_") == validation and k != "learning_rate"
            }
        with self.writer:
            for key, best in self.best_logs.items():
                tf.summary.scalar(f"best/{key}", best, step=epoch)
            tf.summary.scalar("best/epoch", self.best_epoch + 1, step=epoch)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.writer.close()

    def resume_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """`(JSON state, no arrays)` as of the last completed epoch."""
        state = {
            "session_written": self.session_written,
            "best": self.best,
            "best_loss": self.best_loss,
            "best_epoch": self.best_epoch,
            "best_logs": self.best_logs,
        }
        return state, []

    def restore_resume_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Inverse of `resume_state`."""
        del arrays
        self.session_written = state["session_written"]
        self.best = state["best"]
        self.best_loss = state.get("best_loss")
        self.best_epoch = state["best_epoch"]
        self.best_logs = dict(state["best_logs"])


class PredictionSummaries(keras.callbacks.Callback):
    """After every epoch: a text table of sample predictions and, for classes, a confusion matrix.

    Args:
        log_dir: where to write (`RUN_DIR/logs/validation`).
        predict: `(model, frame) -> predictions` with the columns
            `question`, `reference`, `predicted`, `score` (and `correct`)
            for the questions of `frame` (`Task.sample_predictions`).
        frame: the validation split.
        samples: how many distinct questions of `frame` (its first ones)
            the table shows; `0` for none.
        confusion_classes: classes shown in the confusion matrix of all of
            `frame`; `0` for none.
    """

    def __init__(
        self, log_dir: str | Path, predict: Predict, frame: pd.DataFrame, samples: int, confusion_classes: int
    ) -> None:
        super().__init__()
        self.writer = _Writer(log_dir)
        self.predict = predict
        self.samples = sample_frame(frame, samples)
        self.frame = frame if confusion_classes else self.samples
        self.confusion_classes = confusion_classes

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.frame.empty:
            return
        predictions = self.predict(self.model, self.frame)
        with self.writer:
            if len(self.samples):
                shown = predictions["question"].isin(set(self.samples["question"]))
                write_sample_table(predictions.loc[shown].drop_duplicates("question"), epoch)
            if self.confusion_classes:
                title = f"validation, epoch {epoch + 1}"
                write_confusion(predictions, self.confusion_classes, epoch, title)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.writer.close()


def confusion_classes(task: Any) -> int:
    """How many classes the task's confusion matrices show; `0` when it draws none."""
    return task.config.tensorboard.confusion_classes if task.confusion_matrix else 0


def prediction_summaries(task: Any, run_dir: Path, splits: Splits) -> list[keras.callbacks.Callback]:
    """The per-epoch `PredictionSummaries` of a run (none when both are switched off).

    Args:
        task: the run's task (`Task.sample_predictions`, `Task.confusion_matrix`).
        run_dir: the run directory.
        splits: the run's splits; validation questions are shown (training
            questions when the validation split is empty).
    """
    split = "validation" if len(splits.validation) else "train"
    samples, classes = task.config.tensorboard.samples, confusion_classes(task)
    if not samples and not classes:
        return []
    frame = getattr(splits, split)
    return [PredictionSummaries(run_dir / LOGS_DIR / split, task.sample_predictions, frame, samples, classes)]


def sample_frame(frame: pd.DataFrame, samples: int) -> pd.DataFrame:
    """The rows of the first `samples` distinct questions of `frame`."""
    questions = frame["question"].drop_duplicates().head(samples)
    return frame.loc[frame["question"].isin(set(questions))].reset_index(drop=True)


def write_sample_table(predictions: pd.DataFrame, step: int, tag: str = SAMPLES_TAG) -> None:
    """A text summary (table) of `question | reference | predicted | score | correct` rows."""
    header = [c for c in SAMPLE_COLUMNS if c in predictions.columns]
    rows = [header] + [[_cell(row[c]) for c in header] for _, row in predictions.iterrows()]
    tf.summary.text(tag, tf.constant(rows, dtype=tf.string), step=step)


def _cell(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return f"{value:.3f}"
    return str(value)


def write_confusion(predictions: pd.DataFrame, max_classes: int, step: int, title: str) -> None:
    """A confusion-matrix image of `reference` against `predicted`."""
    labels, counts = confusion_counts(
        predictions["reference"].tolist(), predictions["predicted"].tolist(), max_classes
    )
    title = f"{title}: {len(predictions)} questions, {len(labels)} classes shown"
    image = confusion_image(labels, counts, title)
    tf.summary.image(CONFUSION_TAG, image[None], step=step)


# metrics.json entries that describe the run, not its quality
_RUN_FACTS = ("train_seconds", "epochs_run", "best_epoch")


def _is_test_metric(key: str, value: Any) -> bool:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    # `best_*`: the best epoch's validation metrics, already logged as `best/<name>`.
    return number and not key.startswith(("num_", "best_")) and key not in _RUN_FACTS


def write_test_summaries(
    log_dir: str | Path, metrics: dict[str, Any], predictions: pd.DataFrame, step: int, confusion_classes: int
) -> None:
    """Test metrics as `test/<name>` scalars in the HParams session, and the test confusion matrix.

    Args:
        log_dir: the session directory (`RUN_DIR/logs`).
        metrics: the run's test metrics (`metrics.json`, baseline included).
        predictions: one row per test question.
        step: the step to log at (epochs trained).
        confusion_classes: classes in the confusion matrix; `0` for none.
    """
    writer = _Writer(log_dir)
    with writer:
        for key, value in metrics.items():
            if _is_test_metric(key, value):
                tf.summary.scalar(f"test/{key}", float(value), step=step)
        if confusion_classes and len(predictions):
            write_confusion(predictions, confusion_classes, step, f"test, after {step} epochs")
    writer.close()


def write_extras(task: Task, model: keras.Model, log_dir: Path) -> None:
    """After training: projector embeddings, and the augmented examples as TensorBoard text."""
    write_projector(log_dir, task.projector_embeddings(model))
    augmentation = task.augmentation
    if augmentation is not None and augmentation.samples:
        rows = [["operation", "original", "augmented"], *[list(s) for s in augmentation.samples]]
        writer = tf.summary.create_file_writer(str(log_dir / "train"))
        with writer.as_default():
            tf.summary.text("augmented_examples", tf.constant(rows), step=0)
            counts = json.dumps(augmentation.counts)
            tf.summary.text("augmentation_counts", tf.constant(counts), step=0)
        writer.close()
