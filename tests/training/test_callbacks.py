import keras
import numpy as np

from qa_assistant.training.callbacks import EarlyStopping, LearningRateLogger


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


def run(callback: keras.callbacks.Callback, values: list[float], monitor: str) -> tuple[int, _Model]:
    model = _Model()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, value in enumerate(values):
        model.weights = [np.full(1, epoch, float)]
        callback.on_epoch_end(epoch, {monitor: value})
        if model.stop_training:
            break
    callback.on_train_end()
    return epoch, model


def test_flat_validation_accuracy_keeps_training_and_restores_the_latest_tie() -> None:
    stopper = EarlyStopping(monitor="val_accuracy", mode="max", patience=2, restore_best_weights=True)
    stopped_at, model = run(stopper, [0.0, 0.0, 0.0, 0.1, 0.1, 0.05, 0.05, 0.0], "val_accuracy")
    assert stopped_at == 6  # two epochs strictly below 0.1
    assert model.weights[0][0] == 4  # the last epoch that reached 0.1


def test_loss_ties_also_count_as_progress() -> None:
    stopper = EarlyStopping(monitor="val_loss", mode="min", patience=1, restore_best_weights=True)
    stopped_at, model = run(stopper, [3.0, 2.0, 2.0, 2.5], "val_loss")
    assert stopped_at == 3
    assert model.weights[0][0] == 2


def test_learning_rate_logger_adds_the_rate_to_logs() -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.125), loss="mse")
    logger = LearningRateLogger()
    logger.set_model(model)
    logs: dict = {}
    logger.on_epoch_end(0, logs)
    assert logs["learning_rate"] == 0.125
