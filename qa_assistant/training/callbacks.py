"""Callbacks the trainer adds to `fit`.

Callbacks that carry state across epochs (the best value seen, a patience
counter, the best weights) expose it through `resume_state()` /
`restore_resume_state()`, so `training.resume.TrainingState` can save it with
every epoch and put it back after a restart.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

from qa_assistant.atomic import fsync_dir, fsync_tree, temporary_name


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


class _LaterTiesWin:
    """Counts an epoch that equals the best value so far as an improvement.

    Validation accuracy on a few dozen held-out questions moves in coarse
    steps and is often flat for many epochs (e.g. 0.0 while the model is
    still learning). With Keras' strict comparison a flat start makes epoch 1
    "the best" and early stopping restores an untrained model; letting later
    ties win keeps training while validation is flat and stops only after
    `patience` epochs that are strictly worse than the best.
    """

    def _is_improvement(self, monitor_value: Any, reference_value: Any) -> bool:
        if reference_value is None:
            return True
        if self.monitor_op is keras.ops.greater:
            return bool(monitor_value - self.min_delta >= reference_value)
        return bool(monitor_value - self.min_delta <= reference_value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


class EarlyStopping(_LaterTiesWin, keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` where a tie with the best epoch counts as progress."""

    resume_key = "early_stopping"

    def resume_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        """`(JSON state, best weights)` as of the last completed epoch."""
        state = {
            "wait": int(self.wait),
            "stopped_epoch": int(self.stopped_epoch),
            "best": _number(self.best),
            "best_epoch": int(self.best_epoch),
            "has_best_weights": self.best_weights is not None,
        }
        return state, list(self.best_weights or [])

    def restore_resume_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        """Inverse of `resume_state` (call after `on_train_begin`, which resets everything)."""
        self.wait = state["wait"]
        self.stopped_epoch = state["stopped_epoch"]
        self.best = state["best"]
        self.best_epoch = state["best_epoch"]
        self.best_weights = list(arrays) if state["has_best_weights"] else None


class BestCheckpoint(_LaterTiesWin, keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint(save_best_only=True)` with the same tie rule.

    Writes atomically: Keras saves to a temporary file beside `filepath`,
    which is renamed over `filepath` once complete, so a kill mid-save
    leaves the previous best weights intact.
    """

    resume_key = "best_checkpoint"

    def __init__(self, filepath: str | Path, **kwargs: Any) -> None:
        self.final_path = Path(filepath)
        super().__init__(str(self.final_path.with_name(temporary_name(self.final_path.name))), **kwargs)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        written = Path(self.filepath)
        if written.exists():
            fsync_tree(written)
            os.replace(written, self.final_path)
            fsync_dir(self.final_path.parent)

    def resume_state(self) -> tuple[dict[str, Any], list[np.ndarray]]:
        return {"best": _number(self.best)}, []

    def restore_resume_state(self, state: dict[str, Any], arrays: list[np.ndarray]) -> None:
        self.best = state["best"]


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
