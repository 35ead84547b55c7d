"""Callbacks the trainer adds to `fit`.

Callbacks that carry state across epochs (the best value seen, a patience
counter, the best weights) expose it through `resume_state()` /
`restore_resume_state()`, so `training.resume.TrainingState` can save it with
every epoch and put it back after a restart.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from qa_assistant.atomic import fsync_dir, fsync_tree, temporary_name

log = logging.getLogger(__name__)


class Progress(keras.callbacks.Callback):
    """Logs, at most every `every` seconds, where training is: step, speed and the time left.

    For runs whose steps take seconds (a pretrained language model on a
    laptop CPU), where Keras' non-interactive output says nothing until an
    epoch ends. A line reads `epoch 1/2, step 40/102: 1.9 s/step, 2,310
    tokens/s, about 5 min left`: the time left counts the remaining training
    steps at this epoch's speed so far (not validation or evaluation), and
    tokens/s counts the real (unpadded) tokens of an average batch. The
    epoch's first step (which traces the step function) is left out of the
    speed, and nothing is logged before a second step has run.

    Args:
        steps_per_epoch: batches per epoch.
        epochs: the run's last epoch (`train.epochs`).
        tokens_per_epoch: real tokens in one epoch of training batches, or
            `None` to leave tokens/s out.
        every: seconds between lines.
    """

    def __init__(
        self, steps_per_epoch: int, epochs: int, tokens_per_epoch: int | None = None, every: float = 30.0
    ) -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.tokens_per_step = tokens_per_epoch / steps_per_epoch if tokens_per_epoch else None
        self.every = every
        self._epoch = 0
        self._started = self._last = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch
        self._last = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        now = time.perf_counter()
        if batch == 0:
            self._started = now  # the speed counts the steps after the first
        if batch == 0 or now - self._last < self.every:
            return
        self._last = now
        done = batch + 1
        seconds_per_step = (now - self._started) / batch
        left = (self.steps_per_epoch - done) + (self.epochs - self._epoch - 1) * self.steps_per_epoch
        tokens = f", {self.tokens_per_step / seconds_per_step:,.0f} tokens/s" if self.tokens_per_step else ""
        log.info(
            "epoch %d/%d, step %d/%d: %.2f s/step%s, about %s left",
            self._epoch + 1,
            self.epochs,
            done,
            self.steps_per_epoch,
            seconds_per_step,
            tokens,
            _duration(max(left, 0) * seconds_per_step),
        )


def _duration(seconds: float) -> str:
    """`42 s`, `7 min`, `1 h 05 min`."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


class DeadlineError(Exception):
    """Training stopped at its deadline; the run directory is left resumable from its last epoch."""


class Deadline(keras.callbacks.Callback):
    """Stops training (raises `DeadlineError`) after the batch during which `time.time()` passed `at`.

    For callers with a wall-clock budget (`qa-assistant tune`): the run is
    left unfinished, so rerunning it resumes from the last saved epoch rather
    than counting a shortened training as finished.
    """

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        if time.time() > self.at:
            raise DeadlineError(f"training stopped at its deadline, in batch {batch + 1}")


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `learning_rate` to the epoch logs.

    Callbacks receive the same `logs` dict in list order, so placing this one
    before `TensorBoard` makes the learning rate a TensorBoard scalar
    (`epoch_learning_rate`) and a `History` entry, whether it is a constant
    or a schedule.
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        optimizer = self.model.optimizer
        rate = optimizer.learning_rate
        if callable(rate) and not hasattr(rate, "numpy"):
            rate = rate(optimizer.iterations)
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(rate))


class EpochMetrics(keras.callbacks.Callback):
    """Adds the task's `epoch_metrics` of the validation split to the epoch logs as `val_<name>`.

    Placed before TensorBoard, early stopping and the best checkpoint, which
    read the same `logs` dict, so they log and watch these like Keras' own
    metrics. It keeps no state: a resumed run recomputes them from the model,
    and the callbacks that remember the best value save it themselves.

    Args:
        measure: `(model, frame) -> {name: value}` (`Task.epoch_metrics`).
        frame: the validation split.
    """

    def __init__(self, measure: Callable[[keras.Model, Any], dict[str, float]], frame: Any) -> None:
        super().__init__()
        self.measure = measure
        self.frame = frame

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if logs is None:
            return
        for name, value in self.measure(self.model, self.frame).items():
            logs[f"val_{name}"] = float(value)


# Metrics that are better lower, besides the losses (a run's metrics.json names).
LOWER_IS_BETTER = ("perplexity", "aurc", "oov_rate")


def lower_is_better(monitor: str) -> bool:
    """The direction of a monitored metric: a loss, perplexity, AURC or OOV rate goes down, every other metric up.

    >>> [lower_is_better(m) for m in ("val_loss", "perplexity", "val_aurc", "rouge_l", "val_accuracy")]
    [True, True, True, False, False]
    """
    name = monitor.removeprefix("val_").removeprefix("best_val_").removeprefix("baseline_")
    return "loss" in monitor or name in LOWER_IS_BETTER


def loss_key(monitor: str) -> str:
    """The loss of the split that `monitor` is computed on (`val_loss` or `loss`)."""
    return "val_loss" if monitor.startswith("val_") else "loss"


def is_better(
    value: float, loss: float | None, best: float | None, best_loss: float | None, *, lower_is_better: bool
) -> bool:
    """The one rule for "a better epoch", used by early stopping, the best checkpoint and HParams.

    A better monitored value wins; an equal one wins only with a lower loss on
    the same split. Validation accuracy on a few dozen questions moves in
    coarse steps and is often flat (0.0 for many epochs): the loss then decides,
    so the best epoch is the one validation prefers, neither simply the first
    nor the last.
    """
    if best is None:
        return True
    if value != best:
        return value < best if lower_is_better else value > best
    return loss is not None and best_loss is not None and loss < best_loss


class _TiesBrokenByLoss:
    """Makes a Keras callback's `_is_improvement` follow `is_better` (ties broken by the loss)."""

    best_loss: float | None = None
    _epoch_loss: float | None = None

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.best_loss = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_loss = _number((logs or {}).get(loss_key(self.monitor)))
        super().on_epoch_end(epoch, logs)

    def _is_improvement(self, monitor_value: Any, reference_value: Any) -> bool:
        # Keras asks this once per epoch, and takes the epoch as its new best when it says yes.
        better = is_better(
            float(monitor_value),
            self._epoch_loss,
            _number(reference_value),
            self.best_loss,
            lower_is_better=self.monitor_op is keras.ops.less,
        )
        if better:
            self.best_loss = self._epoch_loss
        return better


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class EarlyStopping(_TiesBrokenByLoss, keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` whose best epoch follows `is_better`."""

    resume_key = "early_stopping"

    def resume_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """`(JSON state, best weights)` as of the last completed epoch."""
        state = {
            "wait": int(self.wait),
            "stopped_epoch": int(self.stopped_epoch),
            "best": _number(self.best),
            "best_loss": self.best_loss,
            "best_epoch": int(self.best_epoch),
            "has_best_weights": self.best_weights is not None,
        }
        return state, list(self.best_weights or [])

    def restore_resume_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Inverse of `resume_state` (call after `on_train_begin`, which resets everything)."""
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self.best = state["best"]
        self.best_loss = state.get("best_loss")
        self.best_epoch = state["best_epoch"]
        self.best_weights = list(arrays) if state["has_best_weights"] else None


class BestCheckpoint(_TiesBrokenByLoss, keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint(save_best_only=True)` whose best epoch follows `is_better`.

    Writes atomically: Keras saves to a temporary file beside `filepath`,
    which is renamed over `filepath` once complete, so a kill mid-save
    leaves the previous best weights intact.
    """

    resume_key = "best_checkpoint"

    def __init__(self, filepath: str | Path, *, start_from_epoch: int = 0, **kwargs: Any) -> None:
        self.final_path = Path(filepath)
        self.start_from_epoch = start_from_epoch  # as in EarlyStopping: earlier epochs are never the best
        super().__init__(str(self.final_path.with_name(temporary_name(self.final_path.name))), **kwargs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if epoch < self.start_from_epoch:
            return
        super().on_epoch_end(epoch, logs)
        written = Path(self.filepath)
        if written.exists():
            fsync_tree(written)
            os.replace(written, self.final_path)
            fsync_dir(self.final_path.parent)

    def resume_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        return {"best": _number(self.best), "best_loss": self.best_loss}, []

    def restore_resume_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        self.best = state["best"]
        self.best_loss = state.get("best_loss")


class TensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` that flushes its event files at the end of every epoch.

    TensorFlow's summary writers otherwise flush every two minutes, so a
    killed run would lose the logs of epochs it had completed (and saved in
    its resume state). Flushing first lets a resumed run keep exactly the
    epochs it resumes from (`training.resume.prune_events`).
    """

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        # `_writers` is private; without it we only lose the early flush, never correctness.
        for writer in getattr(self, "_writers", {}).values():
            writer.flush()
