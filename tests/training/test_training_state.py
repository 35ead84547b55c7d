"""`TrainingState` in-process: what a snapshot restores, what a failed save keeps, how logs are trimmed."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.training import resume
from qa_assistant.training.callbacks import BestCheckpoint, EarlyStopping, EpochMetrics, LearningRateLogger
from qa_assistant.training.resume import TrainingState, advance_shuffle, count_batches, prune_events


class Interrupt(keras.callbacks.Callback):
    """Stands in for a crash at the start of epoch `at` (epochs before it are saved)."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.at:
            raise RuntimeError("interrupted")


# What a decoded validation metric says after each epoch: the best is epoch 3's 0.5 (the
# warm-up epoch's 0.9 does not count), then three worse epochs: patience 3 stops after epoch 6.
SCRIPTED = [0.9, 0.1, 0.5, 0.4, 0.45, 0.3, 0.95, 0.2]


def scripted_metric(model: keras.Model, frame: object) -> dict[str, float]:
    """Stands in for `Task.epoch_metrics`: a function of the model (its step count) alone, like decoding."""
    del frame
    return {"score": SCRIPTED[int(model.optimizer.iterations) // 6 - 1]}


def fit(
    directory: Path, epochs: int, interrupt_at: int | None = None, *, decoded: bool = False
) -> tuple[keras.Model, TrainingState]:
    """A dropout model with a decaying learning rate on a reshuffled dataset, fitted as the runner does.

    With `decoded`, early stopping watches `val_score` (added by `EpochMetrics`,
    highest is best) after a one-epoch warm-up, as `train.monitor: val_rouge_l` does.
    """
    keras.utils.set_random_seed(7)
    x = np.random.default_rng(0).normal(size=(48, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("int32")
    data = (
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(48, seed=7, reshuffle_each_iteration=True).batch(8)
    )
    inputs = keras.Input((4,))
    hidden = keras.layers.Dropout(0.5)(keras.layers.Dense(8, activation="relu")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    schedule = keras.optimizers.schedules.ExponentialDecay(0.05, decay_steps=5, decay_rate=0.7)
    model.compile(
        keras.optimizers.Adam(schedule), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    steps = count_batches(data)
    stopping = EarlyStopping(monitor="loss", patience=50, restore_best_weights=True)
    measures = []
    if decoded:
        stopping = EarlyStopping(
            monitor="val_score", mode="max", start_from_epoch=1, patience=3, restore_best_weights=True
        )
        measures = [EpochMetrics(scripted_metric, None)]
    state = TrainingState(directory, steps, stateful=[stopping])
    advance_shuffle(data, state.epochs_done)
    callbacks = [LearningRateLogger(), *measures, stopping, state]
    if interrupt_at is not None:
        callbacks.append(Interrupt(interrupt_at))
    model.fit(
        data.repeat(),
        steps_per_epoch=steps,
        epochs=epochs,
        initial_epoch=state.initial_epoch(epochs),
        callbacks=callbacks,
        shuffle=False,
        verbose=0,
    )
    return model, state


def test_resume_restores_optimizer_schedule_dropout_and_early_stopping(tmp_path: Path) -> None:
    reference, reference_state = fit(tmp_path / "a", epochs=6)
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(tmp_path / "b", epochs=6, interrupt_at=3)
    assert [p.name for p in (tmp_path / "b").glob("state-*")] == ["state-000003"]
    resumed, resumed_state = fit(tmp_path / "b", epochs=6)

    assert resumed_state.epochs_done == 3
    assert resumed_state.history == reference_state.history  # losses and the decaying learning rate
    rates = [epoch["learning_rate"] for epoch in resumed_state.history]
    assert rates == sorted(rates, reverse=True)
    assert rates[0] > rates[-1]
    assert int(resumed.optimizer.iterations) == int(reference.optimizer.iterations) == 6 * 6
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_decoded_monitor_with_warm_up_resumes_like_an_uninterrupted_run(tmp_path: Path) -> None:
    reference, reference_state = fit(tmp_path / "a", epochs=8, decoded=True)
    scores = [epoch["val_score"] for epoch in reference_state.history]
    assert scores == SCRIPTED[:6]  # stopped after three epochs worse than epoch 3's 0.5
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(tmp_path / "b", epochs=8, interrupt_at=4, decoded=True)
    resumed, resumed_state = fit(tmp_path / "b", epochs=8, decoded=True)
    # A resume that lost the best value or the patience count would train on to epoch 7.
    assert resumed_state.history == reference_state.history
    for a, b in zip(reference.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)  # both restored epoch 3's weights


def test_a_failed_save_keeps_the_previous_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fit(tmp_path, epochs=2)
    saved = (tmp_path / "state-000002" / "state.json").read_text()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(resume.np, "savez", disk_full)
    with pytest.raises(
        UserError, match=r"could not save the training state .*No space left on device.*rerun"
    ):
        fit(tmp_path, epochs=3)
    assert [p.name for p in tmp_path.iterdir()] == ["state-000002"]
    assert (tmp_path / "state-000002" / "state.json").read_text() == saved


def test_state_for_other_data_is_refused(tmp_path: Path) -> None:
    fit(tmp_path, epochs=1)
    steps = json.loads((tmp_path / "state-000001" / "state.json").read_text())["steps_per_epoch"]
    with pytest.raises(
        UserError, match=f"state for {steps} batches per epoch, but the data now gives {steps + 1}"
    ):
        TrainingState(tmp_path, steps + 1)


def scalar_steps(log_dir: Path) -> list[int]:
    return [
        event.step
        for path in sorted(log_dir.glob("events.out.tfevents.*"))
        for event in tf.compat.v1.train.summary_iterator(str(path))
        if event.summary.value
    ]


def test_prune_events_keeps_only_what_was_logged_before_the_snapshot(tmp_path: Path) -> None:
    log_dir = tmp_path / "train"
    writer = tf.summary.create_file_writer(str(log_dir))
    with writer.as_default():
        for step in range(3):
            tf.summary.scalar("epoch_loss", 1.0 / (step + 1), step=step)
    writer.flush()
    time.sleep(0.05)
    saved_at = time.time()
    time.sleep(0.05)
    with writer.as_default():
        for step in (3, 4):
            tf.summary.scalar("epoch_loss", 0.1, step=step)
    writer.close()
    assert scalar_steps(log_dir) == [0, 1, 2, 3, 4]
    path = next(log_dir.glob("events.out.tfevents.*"))
    path.write_bytes(path.read_bytes() + b"\x17\x00\x00")  # a record torn by the kill

    prune_events(tmp_path, saved_at)
    assert scalar_steps(log_dir) == [0, 1, 2]
    assert not list(log_dir.glob(".tmp-*"))

    prune_events(tmp_path, None)  # nothing saved: a fresh start keeps no old events
    assert not list(log_dir.glob("events.out.tfevents.*"))


def test_best_checkpoint_writes_atomically_and_its_best_survives_a_restart(tmp_path: Path) -> None:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = tmp_path / "best.weights.h5"

    def checkpoint(state: dict | None = None) -> BestCheckpoint:
        callback = BestCheckpoint(path, monitor="val_loss", save_best_only=True, save_weights_only=True)
        callback.set_model(model)
        callback.on_train_begin()
        if state is not None:
            callback.restore_resume_state(state, [])
        return callback

    first = checkpoint()
    first.on_epoch_begin(0)
    first.on_epoch_end(0, {"val_loss": 1.0})
    assert [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]  # no temporary file left
    written = path.read_bytes()
    state, arrays = first.resume_state()
    assert (state, arrays) == ({"best": 1.0, "best_loss": 1.0}, [])

    model.layers[0].kernel.assign(np.ones((2, 1)))
    resumed = checkpoint(json.loads(json.dumps(state)))  # through the JSON of a snapshot
    resumed.on_epoch_begin(1)
    resumed.on_epoch_end(1, {"val_loss": 1.5})  # worse than the restored best: not saved
    assert path.read_bytes() == written
    resumed.on_epoch_end(2, {"val_loss": 1.0})  # a full tie keeps the earlier best
    assert path.read_bytes() == written
    resumed.on_epoch_end(3, {"val_loss": 0.9})
    assert path.read_bytes() != written


def test_early_stopping_state_round_trips() -> None:
    stopper = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    stopper.set_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]))
    stopper.on_train_begin()
    for epoch, value in enumerate([1.0, 0.5, 0.7]):
        stopper.on_epoch_end(epoch, {"val_loss": value})
    state, arrays = stopper.resume_state()
    assert state == {
        "wait": 1,
        "stopped_epoch": 0,
        "best": 0.5,
        "best_loss": 0.5,
        "best_epoch": 1,
        "has_best_weights": True,
    }
    fresh = EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)
    fresh.on_train_begin()
    fresh.restore_resume_state(json.loads(json.dumps(state)), arrays)
    assert (fresh.wait, fresh.best, fresh.best_epoch) == (1, 0.5, 1)
    for a, b in zip(fresh.best_weights, stopper.best_weights, strict=True):
        np.testing.assert_array_equal(a, b)
