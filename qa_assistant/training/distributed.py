"""Training a replicated model (`mirrored`, `multi_worker`): a custom loop under the strategy.

Keras 3.15's `model.fit` cannot feed a multi-worker strategy (its data
adapter hands the model a `PerReplica` value; reported upstream), and under
`MirroredStrategy` it reshuffles a copy of the dataset in another order than
one device would (see `training/fitting.py`). `fit` here does what Keras'
`fit` does with what does work: it runs Keras' own `model.train_step` /
`model.test_step` inside `strategy.run`, and drives the same callbacks
(`CallbackList`) with the same logs, so the run directory, TensorBoard logs,
resume snapshots and early stopping are those of the single-device path.

Data: every worker builds the same tf.data pipeline from the same file and
seed, so all workers see the same global batches in the same order (one
iterator per epoch, as in the runner's `fit` call, so a resumed run's
shuffle order is the single-machine one). Replica `r` of `R` trains on rows
`[r*b/R, (r+1)*b/R)` of each batch of `b` rows; a short last batch is split
as evenly as it goes (a replica may get no rows). Keras divides each
replica's mean loss by `R` and the optimizer sums gradients over replicas,
so equal shares give the step one machine would take on the whole batch.
Metric variables are summed over all workers when read, so every worker
logs the same global training and validation metrics.

Who decides: only the chief (worker 0) has callbacks. Its decisions reach
the others through collectives: after `on_train_begin` (which may restore a
snapshot) and after training (early stopping may restore its best epoch) the
chief's model, optimizer and random-generator variables are broadcast; after
every epoch its stop flag is. So a resumed run only needs the chief's
snapshot, and the other workers end with the chief's weights.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.training.resume import advance_shuffle

log = logging.getLogger(__name__)

# What the chief tells the other workers before training starts.
GO, FINISHED, FAILED = 1, 2, 3
# dtypes a collective all-reduce accepts; others travel as int64.
_REDUCIBLE = (tf.float16, tf.bfloat16, tf.float32, tf.float64, tf.int32, tf.int64)


def broadcast(strategy: tf.distribute.Strategy, values: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    """The chief's `values`, on every worker.

    Each replica contributes zeros except replica 0 (the chief's first
    device), and the contributions are summed: an exact copy for any dtype.
    All workers must call this together, with tensors of the same shapes.
    """
    values = [tf.convert_to_tensor(v) for v in values]
    if not values:
        return []
    wire = [v if v.dtype in _REDUCIBLE else tf.cast(v, tf.int64) for v in values]
    summed = strategy.experimental_local_results(_broadcaster(strategy)(wire))[0]
    return [tf.cast(s, v.dtype) for s, v in zip(summed, values, strict=True)]


@functools.cache
def _broadcaster(strategy: tf.distribute.Strategy) -> Any:
    def replica_fn(tensors: list[tf.Tensor]) -> list[tf.Tensor]:
        context = tf.distribute.get_replica_context()
        first = tf.equal(context.replica_id_in_sync_group, 0)
        kept = [tf.where(first, t, tf.zeros_like(t)) for t in tensors]
        # One all-reduce per dtype: TensorFlow packs each call's tensors together.
        summed: list[tf.Tensor | None] = [None] * len(kept)
        for dtype in sorted({t.dtype for t in kept}, key=lambda d: d.name):
            where = [i for i, t in enumerate(kept) if t.dtype == dtype]
            reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, [kept[i] for i in where])
            for i, value in zip(where, reduced, strict=True):
                summed[i] = value
        return summed

    @tf.function
    def run(tensors: list[tf.Tensor]) -> Any:
        return strategy.run(replica_fn, args=(tensors,))

    return run


def broadcast_ints(strategy: tf.distribute.Strategy, values: Sequence[int]) -> list[int]:
    """The chief's integers, on every worker."""
    (vector,) = broadcast(strategy, [tf.constant(list(values), dtype=tf.int64)])
    return [int(v) for v in vector.numpy()]


def sync_variables(strategy: tf.distribute.Strategy, model: keras.Model) -> None:
    """Gives every worker the chief's model, optimizer and random-generator variables."""
    variables = list(model.variables)
    if model.optimizer is not None:
        variables += list(model.optimizer.variables)
    for variable, value in zip(variables, broadcast(strategy, [v.value for v in variables]), strict=True):
        variable.assign(value)


def weights_fingerprint(model: keras.Model) -> str:
    """A short SHA-256 of all model weights (bytes, in order): equal fingerprints, equal weights."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()[:16]


def _replica_share(tensor: tf.Tensor) -> tf.Tensor:
    context = tf.distribute.get_replica_context()
    rows = tf.shape(tensor)[0]
    index, count = context.replica_id_in_sync_group, context.num_replicas_in_sync
    return tensor[rows * index // count : rows * (index + 1) // count]


def _step_function(strategy: tf.distribute.Strategy, step: Any) -> Any:
    """A compiled function running `step` on each replica's share of a global batch."""

    def replica_step(batch: Any) -> Any:
        return step(tf.nest.map_structure(_replica_share, batch))

    @tf.function(reduce_retracing=True)
    def run(batch: Any) -> Any:
        return strategy.run(replica_step, args=(batch,))

    return run


def _metric_logs(model: keras.Model) -> dict[str, float]:
    # Reading a metric sums its variables over every worker: all workers call it together.
    return {k: float(v) for k, v in model.get_metrics_result().items()}


def fit(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    dataset: tf.data.Dataset,
    *,
    steps_per_epoch: int,
    validation_data: tf.data.Dataset | None,
    epochs: int,
    initial_epoch: int,
    epochs_done: int,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int,
) -> None:
    """`model.fit(dataset.repeat(), steps_per_epoch=...)` for a replicated strategy (mirrored or multi-worker).

    Every worker calls it with the same data; the chief passes the run's
    callbacks, the other workers none (their callbacks would not run).

    Args:
        model: compiled under `strategy.scope()`.
        strategy: the replicated strategy (`MirroredStrategy` or multi-worker).
        dataset: one epoch of global batches (not repeated), reshuffled per
            iteration.
        steps_per_epoch: batches in `dataset`.
        validation_data: batches evaluated after each epoch, or `None`.
        epochs: last epoch (exclusive), as for `fit`.
        initial_epoch: the chief's first epoch (a resumed or finished run).
        epochs_done: epochs the chief has already trained (shuffle offset).
        callbacks: the chief's callbacks; empty on the other workers.
        verbose: Keras progress bar mode on the chief.

    """
    callback_list = _callback_list(model, strategy, callbacks, verbose, epochs, steps_per_epoch)
    train_step = _step_function(strategy, model.train_step)
    test_step = _step_function(strategy, model.test_step)
    model.stop_training = False
    callback_list.on_train_begin()
    sync_variables(strategy, model)  # the chief may have restored a snapshot
    initial_epoch, epochs_done = broadcast_ints(strategy, [initial_epoch, epochs_done])
    advance_shuffle(dataset, epochs_done)
    batches = iter(dataset.repeat())
    logs: dict[str, float] | None = None
    for epoch in range(initial_epoch, epochs):
        logs = _epoch(
            model, epoch, batches, steps_per_epoch, validation_data, callback_list, train_step, test_step
        )
        (stop,) = broadcast_ints(strategy, [int(bool(model.stop_training))])
        if stop:
            break
    model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs=logs)
    sync_variables(strategy, model)  # early stopping may have restored the chief's best epoch
    _stop_health_checks(strategy)


def _callback_list(
    model: keras.Model,
    strategy: tf.distribute.Strategy,
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: int,
    epochs: int,
    steps: int,
) -> keras.callbacks.CallbackList:
    """The chief's callbacks (none on the other workers), with the optimizer built on every worker."""
    chief = strategy.extended.should_checkpoint
    callback_list = keras.callbacks.CallbackList(
        list(callbacks) if chief else [],
        add_history=True,
        add_progbar=chief and verbose != 0,
        verbose=verbose,
        epochs=epochs,
        steps=steps,
        model=model,
    )
    if not model.optimizer.built:
        with strategy.scope():
            # Every worker must hold the same variables before the chief's are broadcast.
            model.optimizer.build(model.trainable_variables)
    return callback_list


def _epoch(
    model: keras.Model,
    epoch: int,
    batches: Any,
    steps: int,
    validation_data: tf.data.Dataset | None,
    callback_list: keras.callbacks.CallbackList,
    train_step: Any,
    test_step: Any,
) -> dict[str, float]:
    """One epoch: `steps` training batches, then the validation pass; returns the epoch's logs."""
    model.reset_metrics()
    callback_list.on_epoch_begin(epoch)
    for step in range(steps):
        callback_list.on_train_batch_begin(step)
        train_step(next(batches))
        callback_list.on_train_batch_end(step, {})
    logs = _metric_logs(model)
    if validation_data is not None:
        validation = _evaluate(model, test_step, validation_data, callback_list)
        logs.update({f"val_{k}": v for k, v in validation.items()})
    callback_list.on_epoch_end(epoch, logs)
    return logs


def _evaluate(
    model: keras.Model, test_step: Any, dataset: tf.data.Dataset, callback_list: keras.callbacks.CallbackList
) -> dict[str, float]:
    model.reset_metrics()
    callback_list.on_test_begin()
    for step, batch in enumerate(dataset):
        callback_list.on_test_batch_begin(step)
        test_step(batch)
        callback_list.on_test_batch_end(step, {})
    logs = _metric_logs(model)
    callback_list.on_test_end(logs)
    return logs


def _stop_health_checks(strategy: tf.distribute.Strategy) -> None:
    """Ends TensorFlow's peer health checks once no collective is left.

    Workers finish at different times (the chief evaluates and exports);
    without this, the chief's health-check thread would log the finished
    workers as failed peers. The method is private to TensorFlow, hence the
    guard: losing it only brings that log line back.
    """
    stop = getattr(strategy.extended, "_stop_check_health_thread", None)
    if callable(stop):
        stop()


class StartSignal:
    """The start-up handshake: the chief tells the other workers, once, whether training goes ahead.

    The other workers load the data and wait in `hear_chief` while the chief
    checks and prepares the run directory, so a chief that finds a finished
    run, or fails before training, stops them too instead of leaving them
    waiting.

    Args:
        strategy: the multi-worker strategy.
        enabled: false on a single machine (then `send` does nothing).
    """

    def __init__(self, strategy: tf.distribute.Strategy, *, enabled: bool) -> None:
        self.strategy = strategy
        self.pending = enabled

    def send(self, code: int) -> None:
        """Sends `GO`, `FINISHED` or `FAILED`; only the first call per run sends."""
        if self.pending:
            self.pending = False
            broadcast_ints(self.strategy, [code])


def hear_chief(strategy: tf.distribute.Strategy) -> int:
    """A non-chief worker's half of the handshake: the code the chief's `StartSignal` sent."""
    return broadcast_ints(strategy, [0])[0]


@contextlib.contextmanager
def peer_failures(enabled: bool) -> Iterator[None]:
    """On a multi-worker run, turns a lost peer (aborted collectives) into one clear `UserError`.

    A worker that dies makes the others' next collective fail at once on a
    refused connection, or after TensorFlow's health check (up to about a
    minute) when a machine vanishes.
    """
    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError) as error:
        if not enabled:
            raise
        found = re.search(r"aborted by: ([^\n]+)", str(error.message))
        reason = (found[1] if found else str(error.message).strip().splitlines()[-1])[:200]
        raise UserError(
            f"lost contact with another worker ({reason}); rerun the same command on every worker: "
            "training resumes from the last epoch the chief saved"
        ) from None
