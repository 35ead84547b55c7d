"""Crash-safe resume of `model.fit`: the whole training state, saved atomically after every epoch.

After each epoch `TrainingState` writes a snapshot directory
`checkpoints/state-<epochs done>/` (temporary name, flushed, then renamed, so a
`kill -9` at any moment leaves the previous snapshot intact) holding:

* `weights.weights.h5` — model weights and optimizer state (slots, iteration
  count, so a learning-rate schedule continues where it was);
* `arrays.npz` — dropout random-generator states (Keras `SeedGenerator`s,
  which weight files leave out) and the arrays of stateful callbacks (the
  early-stopping best weights);
* `state.json` — epochs done, whether early stopping had stopped, every
  epoch's logs, the callbacks' counters and best values, training seconds.

Rerunning the same training restores all of it. The one piece of state that
lives outside the model is the tf.data shuffle order: a dataset shuffled with
a seed and `reshuffle_each_iteration` draws a new order each time an iterator
is created. The runner therefore hands `fit` `dataset.repeat()` with a fixed
`steps_per_epoch` (one iterator per epoch, created by tf.data, not Keras),
and on resume creates and drops one iterator per finished epoch
(`advance_shuffle`) so the next epoch gets the order it would have had.

TensorBoard events written after the snapshot a run resumes from are removed
(`prune_events`), so a resumed run's logs hold every epoch exactly once.

Arrays are read with `allow_pickle=False`: a snapshot never executes code.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from qa_assistant.atomic import fsync_dir, fsync_tree, remove, remove_stale, temporary_name
from qa_assistant.errors import UserError
from qa_assistant.layout import BEST_WEIGHTS
from qa_assistant.manifest import write_json

log = logging.getLogger(__name__)

_STATE = re.compile(r"^state-(\d{6})$")
_WEIGHTS, _ARRAYS, _JSON = "weights.weights.h5", "arrays.npz", "state.json"


@dataclass
class Snapshot:
    """What `state.json` of one snapshot says."""

    directory: Path
    epoch: int
    stopped: bool
    steps_per_epoch: int
    saved_at: float
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)


def latest_snapshot(directory: Path) -> Snapshot | None:
    """The newest complete snapshot under `directory`, or `None`."""
    found = sorted(
        (int(m[1]), p) for p in directory.glob("state-*") if (m := _STATE.match(p.name)) and p.is_dir()
    )
    if not found:
        return None
    path = found[-1][1]
    data = json.loads((path / _JSON).read_text(encoding="utf-8"))
    return Snapshot(directory=path, **data)


def count_batches(dataset: tf.data.Dataset) -> int:
    """Batches in one pass over `dataset` (one full iteration)."""
    return int(dataset.reduce(np.int64(0), lambda count, _: count + 1).numpy())


def advance_shuffle(dataset: tf.data.Dataset, epochs: int) -> None:
    """Moves a reshuffling dataset's order on by `epochs` passes without reading any data.

    Creating an iterator draws the next shuffle seed; it is dropped at once.
    """
    for _ in range(epochs):
        iter(dataset)


class TrainingState(keras.callbacks.Callback):
    """Saves the training state after every epoch and restores it when a run restarts.

    Put it last in the callback list: it must save after the other callbacks
    have updated their state, and restore theirs after their `on_train_begin`
    has reset it.

    Args:
        directory: where snapshots live (`RUN_DIR/checkpoints`).
        steps_per_epoch: batches per epoch; a snapshot made with another
            value belongs to other data and is refused.
        stateful: callbacks with `resume_key`, `resume_state()` and
            `restore_resume_state()` (early stopping, best checkpoint).
        logs_dir: TensorBoard log directory to trim on resume.

    Example:

    >>> state = TrainingState(run_dir / "checkpoints", steps, stateful=[early_stopping])  # doctest: +SKIP
    >>> advance_shuffle(train_ds, state.epochs_done)  # doctest: +SKIP
    >>> model.fit(train_ds.repeat(), steps_per_epoch=steps,
    ...           initial_epoch=state.initial_epoch(epochs), callbacks=[..., state])  # doctest: +SKIP
    >>> state.history, state.train_seconds  # doctest: +SKIP
    """

    def __init__(
        self,
        directory: Path,
        steps_per_epoch: int,
        *,
        stateful: Sequence[keras.callbacks.Callback] = (),
        logs_dir: Path | None = None,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.steps_per_epoch = int(steps_per_epoch)
        self.stateful = list(stateful)
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_stale(self.directory)
        self.snapshot = latest_snapshot(self.directory)
        if self.snapshot and self.snapshot.steps_per_epoch != self.steps_per_epoch:
            raise UserError(
                f"'{self.directory}' holds training state for {self.snapshot.steps_per_epoch} batches per "
                f"epoch, but the data now gives {self.steps_per_epoch}; use --restart to start over"
            )
        self.history: list[dict[str, float]] = list(self.snapshot.history) if self.snapshot else []
        self._seconds_before = self.snapshot.train_seconds if self.snapshot else 0.0
        self._started = time.perf_counter()
        if logs_dir is not None:
            prune_events(logs_dir, self.snapshot.saved_at if self.snapshot else None)

    @property
    def epochs_done(self) -> int:
        """Epochs completed before this process started."""
        return self.snapshot.epoch if self.snapshot else 0

    def initial_epoch(self, epochs: int) -> int:
        """The `initial_epoch` for `fit`: `epochs` (nothing left) once early stopping has fired."""
        if self.snapshot and self.snapshot.stopped:
            return epochs
        return min(self.epochs_done, epochs)

    @property
    def train_seconds(self) -> float:
        """Seconds spent training, over every process that worked on this run."""
        return self._seconds_before + time.perf_counter() - self._started

    # -- restore -------------------------------------------------------------

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        if self.snapshot is None:
            return
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.snapshot.directory / _WEIGHTS)
        with np.load(self.snapshot.directory / _ARRAYS, allow_pickle=False) as arrays:
            stored = {key: arrays[key] for key in arrays.files}
        seeds = _seed_states(model)
        if sum(k.startswith("seed.") for k in stored) != len(seeds):
            raise UserError(
                f"'{self.snapshot.directory}' does not match this model; use --restart to start over"
            )
        for index, variable in enumerate(seeds):
            variable.assign(stored[f"seed.{index}"])
        for callback in self.stateful:
            key = callback.resume_key
            items = sorted((k for k in stored if k.startswith(f"{key}.")), key=lambda k: int(k.split(".")[1]))
            callback.restore_resume_state(self.snapshot.callbacks[key], [stored[k] for k in items])
        log.info(
            "resumed from %s: %d epochs done%s",
            self.snapshot.directory,
            self.snapshot.epoch,
            " (early stopping had stopped training)" if self.snapshot.stopped else "",
        )

    # -- save ----------------------------------------------------------------

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.history.append({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        try:
            self._save(epoch + 1)
        except OSError as error:
            raise UserError(
                f"could not save the training state in '{self.directory}' ({error.strerror or error}); "
                "the previous state is kept: free some space and rerun the same command to resume"
            ) from None

    def _save(self, epochs_done: int) -> None:
        final = self.directory / f"state-{epochs_done:06d}"
        tmp = self.directory / temporary_name(final.name)
        tmp.mkdir()
        try:
            self.model.save_weights(tmp / _WEIGHTS)
            arrays = {f"seed.{i}": np.asarray(v.numpy()) for i, v in enumerate(_seed_states(self.model))}
            callbacks = {}
            for callback in self.stateful:
                state, values = callback.resume_state()
                callbacks[callback.resume_key] = state
                arrays.update({f"{callback.resume_key}.{i}": np.asarray(a) for i, a in enumerate(values)})
            np.savez(tmp / _ARRAYS, **arrays)
            write_json(
                tmp / _JSON,
                {
                    "epoch": epochs_done,
                    "stopped": bool(self.model.stop_training),
                    "steps_per_epoch": self.steps_per_epoch,
                    "saved_at": time.time(),
                    "train_seconds": self.train_seconds,
                    "history": self.history,
                    "callbacks": callbacks,
                },
            )
            fsync_tree(tmp)
            remove(final)  # a leftover of this very epoch from an earlier process; this one replaces it
            tmp.rename(final)
        except BaseException:
            remove(tmp)
            raise
        fsync_dir(self.directory)
        for older in self.directory.glob("state-*"):
            if older != final:
                remove(older)


def discard_snapshots(directory: Path) -> None:
    """Removes the training state of a finished run (it is never retrained): the resume
    snapshots, and the best-epoch checkpoint, which the saved model now holds (for a LoRA
    language model it was a 534 MB copy of the whole model beside a 7 MB adapter); then
    `directory` itself when nothing else is in it."""
    for path in Path(directory).glob("state-*"):
        remove(path)
    best = Path(directory) / BEST_WEIGHTS
    if best.is_file():
        best.unlink()
    remove_stale(directory)
    with contextlib.suppress(OSError):  # not empty (a file of the user's), or already gone
        Path(directory).rmdir()  # a finished run has no training state to keep


def _seed_states(model: keras.Model) -> list[keras.Variable]:
    """The model's random-generator states (dropout masks), in a stable order."""
    return [v for v in model.variables if v.name == "seed_generator_state"]


def prune_events(logs_dir: Path, saved_at: float | None) -> None:
    """Drops TensorBoard events written after `saved_at` (all of them when `None`).

    A killed run may have logged an epoch it did not get to save; the resumed
    run logs that epoch again, so the first copy goes. Event files are
    TFRecords of `Event` protos, rewritten atomically; a record cut short by
    the kill ends the file.
    """
    for path in sorted(Path(logs_dir).rglob("events.out.tfevents.*")):
        remove_stale(path.parent)
        kept, dropped = _events_until(path, saved_at)
        if not dropped:
            continue
        if not any(event.WhichOneof("what") != "file_version" for event in kept):
            remove(path)
            continue
        # No "tfevents" in the temporary name: TensorBoard must not read it.
        tmp = path.with_name(temporary_name("pruned-events"))
        with tf.io.TFRecordWriter(str(tmp)) as writer:
            for event in kept:
                writer.write(event.SerializeToString())
        fsync_tree(tmp)
        tmp.replace(path)
        fsync_dir(path.parent)
        log.debug("%s: dropped %d events logged after the resumed snapshot", path, dropped)


def _events_until(path: Path, saved_at: float | None) -> tuple[list[Any], int]:
    kept, dropped = [], 0
    try:
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            if saved_at is not None and (
                event.wall_time <= saved_at or event.WhichOneof("what") == "file_version"
            ):
                kept.append(event)
            else:
                dropped += 1
    except tf.errors.DataLossError:
        dropped += 1
    return kept, dropped
