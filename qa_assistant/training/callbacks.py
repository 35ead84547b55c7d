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
