"""The run's optimizer: warm-up + decay schedules, a separate head learning rate, and resuming a schedule."""

from __future__ import annotations

import itertools
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.config import TrainConfig, load_config
from qa_assistant.errors import UserError
from qa_assistant.tasks.optimization import HeadRateAdam, WarmupDecay, build_optimizer, head_variables
from qa_assistant.training.callbacks import LearningRateLogger
from qa_assistant.training.resume import TrainingState, advance_shuffle, count_batches
from tests.training.test_training_state import Interrupt


@pytest.mark.parametrize("decay", ["constant", "cosine", "linear"])
def test_warmup_rises_to_the_peak_then_decays_to_zero(decay: str) -> None:
    schedule = WarmupDecay(0.01, warmup_steps=4, total_steps=20, decay=decay)
    rates = [float(schedule(step)) for step in range(21)]
    assert rates[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    after = rates[4:]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(after))  # never rises after warm-up
    assert after[-1] == pytest.approx(0.01 if decay == "constant" else 0.0, abs=1e-7)
    if decay == "linear":
        assert rates[12] == pytest.approx(0.005)
    assert WarmupDecay.from_config(schedule.get_config()).get_config() == schedule.get_config()


def tiny_model() -> keras.Model:
    inputs = keras.Input((3,))
    encoder = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="inner")], name="encoder")
    head = keras.layers.Dense(2, name="head")
    return keras.Model(inputs, head(encoder(inputs)))


def test_head_variables_learn_at_the_head_rate() -> None:
    keras.utils.set_random_seed(0)
    model = tiny_model()
    assert [v.path for v in head_variables(model)] == ["head/kernel", "head/bias"]
    train = TrainConfig(learning_rate=0.001, head_learning_rate=0.01)
    optimizer = build_optimizer(train, steps_per_epoch=None, model=model)
    assert isinstance(optimizer, HeadRateAdam)
    before = [v.numpy().copy() for v in model.trainable_weights]
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(x) ** 2)
    optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
    # Adam's first step moves every weight by about its learning rate (m / sqrt(v) = +-1).
    steps = {
        v.path: np.abs(v.numpy() - b).max() for v, b in zip(model.trainable_weights, before, strict=True)
    }
    assert steps["encoder/inner/kernel"] == pytest.approx(0.001, rel=0.01)
    assert steps["head/kernel"] == pytest.approx(0.01, rel=0.01)
    assert steps["head/bias"] == pytest.approx(0.01, rel=0.01)


def test_plain_adam_without_a_head_rate_and_config_checks() -> None:
    assert type(build_optimizer(TrainConfig(), steps_per_epoch=None)) is keras.optimizers.Adam
    with pytest.raises(ValueError, match="needs the number of steps per epoch"):
        build_optimizer(TrainConfig(schedule="cosine"), steps_per_epoch=None)
    with pytest.raises(UserError, match=r"train\.warmup_epochs \(3\.0\) is longer than train\.epochs"):
        load_config([], ["train.epochs=2", "train.warmup_epochs=3"])
    with pytest.raises(UserError, match="expected one of: constant, cosine, linear"):
        load_config([], ["train.schedule=step"])
    with pytest.raises(UserError, match=r"train\.head_learning_rate' must be greater than 0"):
        load_config([], ["train.head_learning_rate=0"])


def fit(directory: Path, interrupt_at: int | None = None) -> TrainingState:
    """Warm-up + cosine schedule with a head rate, fitted as the runner fits (resumable)."""
    keras.utils.set_random_seed(3)
    x = np.random.default_rng(1).normal(size=(32, 3)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")
    data = (
        tf.data.Dataset.from_tensor_slices((x, y)).shuffle(32, seed=3, reshuffle_each_iteration=True).batch(8)
    )
    model = tiny_model()
    steps = count_batches(data)
    train = TrainConfig(
        epochs=6, learning_rate=0.05, head_learning_rate=0.1, warmup_epochs=2, schedule="cosine"
    )
    model.compile(
        build_optimizer(train, steps, model), keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    state = TrainingState(directory, steps)
    advance_shuffle(data, state.epochs_done)
    callbacks: list = [LearningRateLogger(), state]
    if interrupt_at is not None:
        callbacks.append(Interrupt(interrupt_at))
    model.fit(
        data.repeat(),
        steps_per_epoch=steps,
        epochs=6,
        initial_epoch=state.initial_epoch(6),
        callbacks=callbacks,
        shuffle=False,
        verbose=0,
    )
    return state


def test_a_resumed_run_continues_the_schedule_where_it_stopped(tmp_path: Path) -> None:
    reference = fit(tmp_path / "a")
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(tmp_path / "b", interrupt_at=3)
    resumed = fit(tmp_path / "b")
    assert resumed.epochs_done == 3
    rates = [epoch["learning_rate"] for epoch in reference.history]
    assert rates[1] == pytest.approx(0.05)  # the end of the two warm-up epochs
    assert rates[-1] == pytest.approx(0.0, abs=1e-6)
    assert [e["learning_rate"] for e in resumed.history] == rates
    assert [e["loss"] for e in resumed.history] == pytest.approx(
        [e["loss"] for e in reference.history], rel=1e-5
    )
