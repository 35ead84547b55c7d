from pathlib import Path

import keras
import numpy as np

from qa_assistant.training import callbacks
from qa_assistant.training.callbacks import (
    BestCheckpoint,
    EarlyStopping,
    LearningRateLogger,
    Progress,
    is_better,
)
from qa_assistant.training.tensorboard import BestMetrics


class _Model:
    """Just enough of a model for the callbacks' bookkeeping."""

    def __init__(self) -> None:
        self.stop_training = False
        self.weights = [np.zeros(1)]
        self.metrics = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        self.weights = weights


def run(
    callback: keras.callbacks.Callback, values: list[float], monitor: str, losses: list[float] | None = None
) -> tuple[int, _Model]:
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        model.weights = [np.full(1, epoch, float)]
        logs = {monitor: value}
        if losses is not None:
            logs["val_loss"] = losses[epoch]
        callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback.on_train_end()
    return epoch, model


def test_is_better_breaks_ties_on_the_loss() -> None:
    assert is_better(0.2, 9.0, 0.1, 1.0, lower_is_better=False)  # a better value wins whatever the loss
    assert not is_better(0.1, 2.0, 0.1, 1.0, lower_is_better=False)  # a tie with a higher loss loses
    assert is_better(0.1, 0.5, 0.1, 1.0, lower_is_better=False)  # a tie with a lower loss wins
    assert not is_better(0.1, 1.0, 0.1, 1.0, lower_is_better=False)  # a full tie keeps the earlier epoch
    assert not is_better(0.1, None, 0.1, 1.0, lower_is_better=False)
    assert is_better(2.0, 2.0, 3.0, 3.0, lower_is_better=True)
    assert is_better(0.0, None, None, None, lower_is_better=False)  # the first epoch


# Validation accuracy flat at 0 while its loss falls, then rises: epoch 2 is the one validation prefers.
FLAT = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
LOSSES = [5.0, 4.0, 3.5, 3.6, 3.9, 4.2]


def test_flat_validation_accuracy_stops_on_the_loss_and_restores_its_best_epoch() -> None:
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=2, restore_best_weights=True)
    stopped_at, model = run(stopper, FLAT, "val_accuracy", LOSSES)
    assert stopped_at == 4  # epochs 3 and 4 are ties with a higher loss: no progress
    assert model.weights[0][0] == 2
    assert stopper.best_epoch == 2


def test_checkpoint_and_hparams_agree_with_early_stopping(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    checkpoint = BestCheckpoint(
        tmp_path / "best.weights.h5",
        monitor="val_accuracy",
        mode="max",
        save_best_only=True,
        save_weights_only=True,
    )
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    for epoch, (value, loss) in enumerate(zip(FLAT, LOSSES, strict=True)):
        model.set_weights([np.full((1, 1), epoch, "float32"), np.zeros(1, "float32")])
        checkpoint.on_epoch_end(epoch, {"val_accuracy": value, "val_loss": loss})
    model.load_weights(tmp_path / "best.weights.h5")
    assert model.get_weights()[0][0, 0] == 2
    tracker = BestMetrics(tmp_path / "logs", {"encoder.type": "gru"}, "val_accuracy")
    run(tracker, FLAT, "val_accuracy", LOSSES)
    assert tracker.best_epoch == 2
    assert tracker.best_logs == {"val_accuracy": 0.0, "val_loss": 3.5}


def test_loss_ties_keep_the_earlier_epoch() -> None:
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=1, restore_best_weights=True)
    stopped_at, model = run(stopper, [3.0, 2.0, 2.0, 2.5], "val_loss")
    assert stopped_at == 2
    assert model.weights[0][0] == 1


def test_learning_rate_logger_adds_the_rate_to_logs() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.125), loss="mse")
    logger = LearningRateLogger()
    logger.set_model(model)
    logs: dict = {}
    logger.on_epoch_end(0, logs)
    assert logs["learning_rate"] == 0.125


def test_progress_reports_speed_tokens_and_time_left(monkeypatch, caplog) -> None:
    # Epoch start; step 1 ends (tracing: 60 s, left out of the speed, no line); step 2 ends;
    # step 3 ends too soon after for another line.
    clock = iter([0.0, 60.0, 65.0, 66.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    progress = Progress(steps_per_epoch=4, epochs=2, tokens_per_epoch=400, every=5.0)
    with caplog.at_level("INFO", logger=callbacks.__name__):
        progress.on_epoch_begin(0)
        progress.on_train_batch_end(0)
        progress.on_train_batch_end(1)
        progress.on_train_batch_end(2)
    lines = [r.getMessage() for r in caplog.records]
    # 5 s/step; 100 tokens per step; 2 steps of this epoch and 4 of the next left.
    assert lines == ["epoch 1/2, step 2/4: 5.00 s/step, 20 tokens/s, about 30 s left"]


def test_progress_without_token_counts_and_long_runs(monkeypatch, caplog) -> None:
    clock = iter([0.0, 10.0, 310.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    progress = Progress(steps_per_epoch=10, epochs=3)
    with caplog.at_level("INFO", logger=callbacks.__name__):
        progress.on_epoch_begin(1)
        progress.on_train_batch_end(0)
        progress.on_train_batch_end(1)
    # 300 s/step; 8 steps of this epoch and 10 of the last left.
    assert [r.getMessage() for r in caplog.records] == [
        "epoch 2/3, step 2/10: 300.00 s/step, about 1 h 30 min left"
    ]
