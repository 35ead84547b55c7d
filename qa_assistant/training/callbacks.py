"""Callbacks the trainer adds to `fit`."""

from __future__ import annotations

from typing import Any

import keras


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


class EarlyStopping(_LaterTiesWin, keras.callbacks.EarlyStopping):
    """`keras.callbacks.EarlyStopping` where a tie with the best epoch counts as progress."""


class BestCheckpoint(_LaterTiesWin, keras.callbacks.ModelCheckpoint):
    """`keras.callbacks.ModelCheckpoint(save_best_only=True)` with the same tie rule."""
