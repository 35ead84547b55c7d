"""How a model is trained once the data is loaded: under which strategy, XLA and dtype policy, with which loop.

`build_training` fits the task's preprocessing, makes the datasets and builds
the model under the run's `Placement` (strategy, XLA, mixed precision, the
cuDNN check). `fit_model` trains it: Keras' `fit` on one device (CPU, GPU or
TPU), the loop of `training/distributed.py` when the model is replicated
(`mirrored`, `multi_worker`). Both take one epoch as one iterator over the
same shuffled dataset, and the loop gives each replica its share of every
batch, so a run's batches and their order do not depend on the path or the
number of replicas.

Why not Keras' `fit` for `mirrored`: it works, but it feeds the replicas
from a rewritten copy of the dataset whose reshuffled order is not the
single-device one (measured: after three epochs of a seeded, reshuffled
dataset a GRU's weights differed by up to 0.77 from one device's; with the
loop, by 3e-7), so a run would depend on the device count and a resumed
run's shuffle order could not be vouched for.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from qa_assistant.config import Config
from qa_assistant.data.dataset import QAData
from qa_assistant.data.split import Splits
from qa_assistant.errors import UserError
from qa_assistant.tasks import Task
from qa_assistant.training import distributed
from qa_assistant.training.cudnn import cudnn_warnings
from qa_assistant.training.initialize import initialize
from qa_assistant.training.precision import dtype_policy, resolve_mixed_precision
from qa_assistant.training.resume import TrainingState, advance_shuffle, count_batches
from qa_assistant.training.strategy import Placement, resolve_jit_compile

log = logging.getLogger(__name__)


def settle_from_data(config: Config, task: Task, data: QAData) -> Config:
    """`config` with the values the task takes from the data (`Task.settings_from_data`); `task.config` too.

    Called before the config is compared with an unfinished run's and written
    to config.yaml: the data decides the same values again on resume.
    """
    settings = task.settings_from_data(data)
    task.config = _with_settings(task.config, settings)
    return _with_settings(config, settings)


def _with_settings(config: Config, settings: dict[str, Any]) -> Config:
    for key, value in settings.items():
        section, name = key.split(".")
        config = dataclasses.replace(
            config, **{section: dataclasses.replace(getattr(config, section), **{name: value})}
        )
    return config


def build_training(
    task: Task, data: QAData, placement: Placement, run_dir: Path | None = None
) -> tuple[keras.Model, tf.data.Dataset, tf.data.Dataset | None, int]:
    """Fits the preprocessing, makes the datasets, and builds and compiles the model under the strategy.

    With `init.source`, the base model's weights are copied in before
    compiling (`training/initialize.py`; its report goes to `run_dir`).

    Returns:
        `(model, training batches (one epoch), validation batches or None,
        batches per epoch)`.

    Raises:
        UserError: the training split gives no batch.
    """
    config = task.config
    splits = data.splits
    log.info(
        "split (%s): %d train, %d validation, %d test",
        splits.method,
        len(splits.train),
        len(splits.validation),
        len(splits.test),
    )
    # Seeded here, right before anything random is built, and not only at start-up:
    # building the TFDS cache of the builtin corpus the first time draws from the
    # global generators, and a run right after that build would otherwise start
    # from other weights than every later run with the same seed.
    keras.utils.set_random_seed(config.train.seed)
    config = settle_from_data(config, task, data)  # a no-op when the runner settled them already
    task.prepare(data)
    task.held_out_questions = splits.held_out_keys()  # augmentation must not recreate them
    if not task.data_needs_model:
        # Before the model, as always: the seeds draw the weights they drew before.
        train_ds, val_ds, steps = _datasets(task, splits)
    jit, policy = _compilation(config, placement)
    with placement.strategy.scope(), dtype_policy(policy):
        model = task.build_model()
        initialize(task, model, run_dir)  # --init-from: base weights, before compile
    task.remember_start(model)  # a resumed run restores its snapshot later, in `fit`
    if task.data_needs_model:
        # Examples drawn from the model as it starts (retrieval's model-mined
        # hard negatives): after its weights are in, before the first epoch.
        task.prepare_with_model(model)
        train_ds, val_ds, steps = _datasets(task, splits)
    task.steps_per_epoch = steps  # a learning-rate schedule counts steps
    with placement.strategy.scope(), dtype_policy(policy):
        task.compile(model, jit_compile=jit)
    for message in cudnn_warnings(model, placement.device_types):
        log.warning(message)
    _log_first_batch(train_ds, model)
    return model, train_ds, val_ds, steps


def _compilation(config: Config, placement: Placement) -> tuple[bool, str]:
    """Whether the train step is XLA-compiled and the dtype policy, for this config on these devices."""
    jit = resolve_jit_compile(
        config.train.jit_compile,
        device_types=placement.device_types,
        strategy=placement.name,
        task=config.task.type,
        encoder=config.encoder.type,
    )
    policy = resolve_mixed_precision(config.train.mixed_precision, device_types=placement.device_types)
    log.info(
        "XLA %s, dtype policy %s, global batch %d", "on" if jit else "off", policy, config.train.batch_size
    )
    return jit, policy


def _datasets(task: Task, splits: Splits) -> tuple[tf.data.Dataset, tf.data.Dataset | None, int]:
    """`(training batches (one epoch), validation batches or None, batches per epoch)`.

    Raises:
        UserError: the training split gives no batch.
    """
    train_ds = task.dataset(splits.train, training=True)
    val_ds = task.dataset(splits.validation, training=False) if len(splits.validation) else None
    # One iterator per epoch, made by tf.data: the shuffle order of epoch k is
    # then the k-th draw however often Keras or a restart makes iterators.
    steps = count_batches(train_ds)
    if steps == 0:
        raise UserError("the training split gives no batches; expected at least one training example")
    return train_ds, val_ds, steps


def fit_model(
    model: keras.Model,
    placement: Placement,
    train_ds: tf.data.Dataset,
    steps: int,
    val_ds: tf.data.Dataset | None,
    config: Config,
    callbacks: list[keras.callbacks.Callback],
    state: TrainingState | None,
) -> None:
    """Trains `model` from where `state` (the chief's resume state; `None` elsewhere) left off.

    Args:
        model: from `build_training`.
        placement: the run's strategy and this process's role.
        train_ds: one epoch of training batches.
        steps: batches per epoch.
        val_ds: validation batches, or `None`.
        config: the run's config (`train.epochs`).
        callbacks: the run's callbacks (none on non-chief workers).
        state: the `TrainingState` among `callbacks`, or `None`.
    """
    epochs = config.train.epochs
    epochs_done = state.epochs_done if state else 0
    initial_epoch = state.initial_epoch(epochs) if state else 0
    # Keras' fit cannot feed a multi-worker strategy at all (training/distributed.py).
    if placement.replicated:
        distributed.fit(
            model,
            placement.strategy,
            train_ds,
            steps_per_epoch=steps,
            validation_data=val_ds,
            epochs=epochs,
            initial_epoch=initial_epoch,
            epochs_done=epochs_done,
            callbacks=callbacks,
            verbose=_verbosity(),
        )
        return
    advance_shuffle(train_ds, epochs_done)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        model.fit(
            train_ds.repeat(),
            steps_per_epoch=steps,
            validation_data=val_ds,
            epochs=epochs,
            initial_epoch=initial_epoch,
            shuffle=False,  # the dataset shuffles itself, seeded
            callbacks=callbacks,
            verbose=_verbosity(),
        )


def _verbosity() -> int:
    return 1 if sys.stdout.isatty() else 2


def _log_first_batch(dataset: tf.data.Dataset, model: keras.Model) -> None:
    inputs, targets = next(iter(dataset))
    shapes = tf.nest.map_structure(lambda t: tuple(t.shape), (inputs, targets))
    log.info(
        "first batch (inputs, targets) shapes: %s; model parameters: %s", shapes, f"{model.count_params():,}"
    )
