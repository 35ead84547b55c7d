"""A training run, start to finish: data, model, fit, evaluation, a complete run directory.

The run directory's layout is `layout.py`'s. Nothing is created before the
data and config have been validated, and `metrics.json` only appears once
everything else is in place, so a directory without it is an unfinished run
(rerunning the same command resumes it from the last completed epoch). Files
are written atomically (`qa_assistant.atomic`).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from qa_assistant.atomic import remove_stale, replacing, write_text
from qa_assistant.config import Config, check_trains
from qa_assistant.data.dataset import QAData, load_qa_data
from qa_assistant.data.split import FEW_VALIDATION_QUESTIONS, Splits, distinct_questions
from qa_assistant.errors import UserError
from qa_assistant.layout import (
    BEST_WEIGHTS,
    CHECKPOINTS_DIR,
    DATA_DIR,
    LOGS_DIR,
    METRICS_FILE,
    PREDICTIONS_FILE,
    RUN_MARKER,
    is_finished,
)
from qa_assistant.manifest import write_json
from qa_assistant.models.encoders import get_encoder_builder
from qa_assistant.personalization.sources import open_source
from qa_assistant.tasks import Task, get_task
from qa_assistant.training import distributed
from qa_assistant.training.callbacks import (
    BestCheckpoint,
    Deadline,
    DeadlineError,
    EarlyStopping,
    EpochMetrics,
    LearningRateLogger,
    Progress,
    TensorBoard,
    lower_is_better,
)
from qa_assistant.training.fitting import build_training, fit_model, settle_from_data
from qa_assistant.training.resume import (
    TrainingState,
    discard_snapshots,
)
from qa_assistant.training.run_directory import (
    RunLock,
    check_finished_matches,
    check_output,
    check_resumable,
    discard_if_new,
    empty_run_dir,
    read_metrics,
    write_inputs,
)
from qa_assistant.training.strategy import Placement, global_batch_size, make_placement
from qa_assistant.training.tensorboard import (
    BestMetrics,
    confusion_classes,
    hparams_of,
    prediction_summaries,
    write_extras,
    write_test_summaries,
)

log = logging.getLogger(__name__)

# Monitors that `Task.epoch_metrics` computes after each epoch (Keras' validation pass cannot).
GENERATED_MONITORS = ("val_rouge_l", "val_mrr")


@dataclass
class RunResult:
    """What a finished run reports (`chief` is false on a multi-worker run's other workers, which write nothing).

    `finish_seconds` is the time this call spent after training (saving, the test split's
    evaluation, the baseline); `None` when it trained nothing.
    """

    run_dir: Path
    metrics: dict[str, float]
    already_finished: bool = False
    chief: bool = True
    finish_seconds: float | None = None


def train_run(
    config: Config, output: str | Path, *, restart: bool = False, deadline: float | None = None
) -> RunResult:
    """Trains, evaluates on the test split, and writes a complete run directory.

    Args:
        config: resolved config (`data.train` / `data.test` name the inputs).
        output: the run directory.
        restart: delete an existing run in `output` and start over.
        deadline: a `time.time()` after which training stops with
            `callbacks.DeadlineError`, leaving the run to resume later.

    Returns:
        The run's metrics (also in `RUN_DIR/metrics.json`).

    Raises:
        UserError: invalid inputs; nothing is written in that case. A
            directory this call created is removed again if it fails before
            the first epoch has been saved.
    """
    run_dir = Path(output)
    if restart or not is_finished(run_dir):  # a finished run is reported (and exported) as it is
        check_trains(config)
    get_encoder_builder(config.encoder.type)  # bad names fail before TensorFlow starts or data is read
    get_task(config)
    placement = make_placement(config.train.strategy)  # the first TensorFlow work: multi_worker needs that
    if placement.multi_worker and config.train.monitor in GENERATED_MONITORS:
        # Decoding on the chief alone would stall the workers' collectives (as the sample tables would).
        raise UserError(
            f"train.monitor {config.train.monitor} scores the validation questions on one machine; "
            "a multi_worker run cannot, expected val_loss"
        )
    task = get_task(_with_global_batch(config, placement.replicas))
    with distributed.peer_failures(placement.multi_worker):
        if not placement.chief:
            return _train_worker(task, placement, run_dir)
        start = distributed.StartSignal(placement.strategy, enabled=placement.multi_worker)
        try:
            with RunLock(run_dir) as lock:
                return _train_chief(config, task, placement, run_dir, restart, start, deadline, lock)
        finally:
            # Tells waiting workers to stop if the chief stopped before training.
            start.send(distributed.FAILED)


def _with_global_batch(config: Config, replicas: int) -> Config:
    """`config` with `train.batch_size` as the global batch (what the tasks batch by)."""
    train = config.train
    size = global_batch_size(train.batch_size, train.batch_size_scope, replicas)
    return dataclasses.replace(
        config, train=dataclasses.replace(train, batch_size=size, batch_size_scope="global")
    )


def _train_chief(
    config: Config,
    task: Task,
    placement: Placement,
    run_dir: Path,
    restart: bool,
    start: distributed.StartSignal,
    deadline: float | None,
    lock: RunLock,
) -> RunResult:
    check_output(run_dir, restart)
    if run_dir.is_dir():
        lock.acquire()  # a new directory is locked once made
    for folder in (run_dir, run_dir / DATA_DIR):  # files a killed call was writing
        if folder.is_dir():
            remove_stale(folder)
    if is_finished(run_dir) and not restart:
        check_finished_matches(run_dir, config)  # old metrics must not pass for another model's
        log.info("%s already holds a finished run; not retraining (use --restart to start over)", run_dir)
        start.send(distributed.FINISHED)
        return RunResult(run_dir, read_metrics(run_dir), already_finished=True)
    task.init_source = open_source(config)  # an unsafe or missing base fails before any write
    keras.utils.set_random_seed(config.train.seed)
    data = load_qa_data(config)
    config = settle_from_data(config, task, data)
    emptied = restart and run_dir.exists()
    if emptied:
        lock.acquire()  # if it appeared since: another process may be training there
        empty_run_dir(run_dir)  # only once the new config and data have proved usable; the lock stays on it
    check_resumable(run_dir, config, data)
    created = False  # set once this call holds the directory: a refused call removes nothing
    try:
        made = not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        lock.acquire()  # a directory made just now (one held already stays held)
        created = made or emptied
        write_text(run_dir / RUN_MARKER, "qa-assistant run directory\n")
        write_inputs(run_dir, config, data)
        start.send(distributed.GO)
        return _train_and_evaluate(task, data, run_dir, placement, deadline)
    except DeadlineError:  # a planned pause (`tune`'s budget): the run is left to resume
        raise
    except BaseException as error:  # before the first saved epoch there is nothing to resume
        discard_if_new(run_dir, created)
        if isinstance(error, (tf.errors.ResourceExhaustedError, MemoryError)):
            raise UserError(_out_of_memory(error)) from None
        if isinstance(error, OSError):  # a full disk or a path that became unwritable
            raise UserError(
                f"could not write the run in '{run_dir}' ({error}); expected a writable path with space"
            ) from None
        raise


def _out_of_memory(error: BaseException) -> str:
    shape = re.search(r"shape\s*\[([0-9, ]+)\]", str(error))
    what = f"a tensor of shape [{shape[1]}] did not fit" if shape else type(error).__name__
    return (
        f"out of memory while training ({what}); reduce train.batch_size, encoder.units, "
        "embedding.dim, text.max_tokens or text.max_length"
    )


def _train_worker(task: Task, placement: Placement, run_dir: Path) -> RunResult:
    """A multi-worker run's other workers: train alongside the chief, write nothing."""
    keras.utils.set_random_seed(task.config.train.seed)
    task.init_source = open_source(task.config)  # the same starting weights as the chief
    data = load_qa_data(task.config)
    settle_from_data(task.config, task, data)  # the chief's values: the same data gives the same numbers
    told = distributed.hear_chief(placement.strategy)
    if told == distributed.FINISHED:
        return RunResult(run_dir, {}, already_finished=True, chief=False)
    if told != distributed.GO:
        raise UserError("the chief worker stopped before training started; its output says why")
    model, train_ds, val_ds, steps = build_training(task, data, placement)
    fit_model(model, placement, train_ds, steps, val_ds, task.config, [], None)
    log.info("%s: weights fingerprint %s", placement.description, distributed.weights_fingerprint(model))
    return RunResult(run_dir, {}, chief=False)


def _train_and_evaluate(
    task: Task, data: QAData, run_dir: Path, placement: Placement, deadline: float | None = None
) -> RunResult:
    config = task.config
    splits = data.splits
    model, train_ds, val_ds, steps = build_training(task, data, placement, run_dir)
    monitor = config.train.monitor if val_ds is not None else "loss"
    _warn_small_validation(config, splits)
    # Per-epoch predictions on the chief alone would stall a multi-worker strategy's collectives.
    summaries = [] if placement.multi_worker else prediction_summaries(task, run_dir, splits)
    measures = [EpochMetrics(task.epoch_metrics, splits.validation)] if monitor in GENERATED_MONITORS else []
    callbacks, state = _callbacks(config, run_dir, monitor, steps, summaries, measures)
    if not sys.stdout.isatty():  # a terminal has Keras' progress bar
        callbacks.insert(0, Progress(steps, config.train.epochs, task.tokens_per_epoch))
    if deadline is not None:
        callbacks.insert(0, Deadline(deadline))
    fit_model(model, placement, train_ds, steps, val_ds, config, callbacks, state)
    trained_at = time.monotonic()
    # Training ends here: what follows (saving, calibration, the test set's answers and the
    # baseline) is not training time; for a language model the test answers take minutes.
    train_seconds = state.train_seconds
    best = run_dir / CHECKPOINTS_DIR / BEST_WEIGHTS
    if best.is_file():
        # The best epoch by `callbacks.is_better`, with or without early stopping (which
        # restores it only when it stops the run); none before `train.monitor_from_epoch`.
        model.load_weights(best)
    if placement.multi_worker:
        log.info("%s: weights fingerprint %s", placement.description, distributed.weights_fingerprint(model))
        # Calibration, evaluation and export use the saved model, outside the multi-worker strategy.
        task.save_model(model, run_dir)
        model = task.read_model(run_dir)
    task.finalize(model, splits)
    task.save(run_dir)
    write_extras(task, model, run_dir / LOGS_DIR)  # projector, augmented examples
    task.save_model(model, run_dir)
    # Answering the test questions can take minutes (a language model decodes each): the log says so.
    log.info(
        "trained in %.0f s; answering the %d test questions",
        train_seconds,
        distinct_questions(splits.test),
    )
    metrics, predictions = task.evaluate(model, splits.test)
    baseline = task.baseline(splits)
    with replacing(run_dir / PREDICTIONS_FILE) as tmp:
        predictions.to_json(tmp, orient="records", lines=True, force_ascii=False)
    metrics.update(
        num_train=len(splits.train),
        num_validation=len(splits.validation),
        num_test=len(splits.test),  # rows; `num_questions` (from `evaluate`) counts distinct questions
        train_seconds=round(train_seconds, 2),
        epochs_run=len(state.history),
        **_best_epoch_facts(callbacks),
        **{f"baseline_{k}": v for k, v in baseline.items()},
    )
    write_test_summaries(
        run_dir / LOGS_DIR, metrics, predictions, len(state.history), confusion_classes(task)
    )
    write_json(run_dir / METRICS_FILE, metrics)
    discard_snapshots(run_dir / CHECKPOINTS_DIR)
    return RunResult(run_dir, metrics, finish_seconds=time.monotonic() - trained_at)


def _warn_small_validation(config: Config, splits: Splits) -> None:
    """Says when no epoch is watched (a warm-up as long as training: the last epoch is kept),
    and warns when the epoch a run keeps would be chosen on a validation split too small to
    tell epochs apart (with or without early stopping: the best epoch is always kept)."""
    train = config.train
    if train.monitor_from_epoch >= train.epochs:
        log.info(
            "train.monitor_from_epoch %d is not below train.epochs %d: the run keeps its last epoch, "
            "with no best-epoch choice or early stopping (--set train.monitor_from_epoch=0 watches every epoch)",
            train.monitor_from_epoch,
            train.epochs,
        )
        return
    questions = distinct_questions(splits.validation)
    if train.epochs - train.monitor_from_epoch > 1 and 0 < questions < FEW_VALIDATION_QUESTIONS:
        log.warning(
            "the epoch this run keeps%s is chosen by %s on %d validation questions (one question moves it "
            "by %.0f points); expected at least %d. Choose train.epochs by k-fold validation of the training "
            "pairs instead (qa-assistant tune --config ... --space train.epochs=int:1:%d "
            "--set train.early_stopping=0), then keep the last of them: --set train.epochs=E "
            "train.monitor_from_epoch=E",
            ", and when it stops early," if train.early_stopping else "",
            train.monitor,
            questions,
            100 / questions,
            FEW_VALIDATION_QUESTIONS,
            min(max(2, train.epochs), 30),
        )


def _callbacks(
    config: Config,
    run_dir: Path,
    monitor: str,
    steps_per_epoch: int,
    summaries: list[keras.callbacks.Callback],
    measures: list[keras.callbacks.Callback],
) -> tuple[list[keras.callbacks.Callback], TrainingState]:
    """The run's callbacks and its `TrainingState`.

    `measures` (`EpochMetrics`) come before everything that reads the epoch
    logs: they add the values that TensorBoard logs and early stopping watches.
    """
    checkpoints = run_dir / CHECKPOINTS_DIR
    # Explicit: Keras cannot tell the direction of a metric it does not compute itself.
    mode = "min" if lower_is_better(monitor) else "max"
    warmup = config.train.monitor_from_epoch
    stateful: list[keras.callbacks.Callback] = [
        BestCheckpoint(
            checkpoints / BEST_WEIGHTS,
            start_from_epoch=warmup,
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            save_weights_only=True,
        ),
    ]
    if config.train.early_stopping > 0:
        stateful.append(
            EarlyStopping(
                monitor=monitor,
                mode=mode,
                start_from_epoch=warmup,
                patience=config.train.early_stopping,
                restore_best_weights=True,
            )
        )
    stateful.append(BestMetrics(run_dir / LOGS_DIR, hparams_of(config), monitor, start_from_epoch=warmup))
    # Last, so it saves after the others have updated and restores after they reset.
    state = TrainingState(checkpoints, steps_per_epoch, stateful=stateful, logs_dir=run_dir / LOGS_DIR)
    callbacks = [
        LearningRateLogger(),
        *measures,
        TensorBoard(log_dir=str(run_dir / LOGS_DIR), write_graph=False),
        *summaries,  # before the state: what they log at an epoch's end is kept on resume
        *stateful,
        state,
    ]
    return callbacks, state


def _best_epoch_facts(callbacks: list[keras.callbacks.Callback]) -> dict[str, float]:
    """`best_epoch` (1-based; 0 when every epoch was in the warm-up) and that epoch's metrics of
    the monitored split as `best_<name>` (`best_val_loss`, ...).

    The validation metrics are what a sweep or a comparison chooses by: the
    validation split of the training data, never the test split.
    """
    tracker = next(c for c in callbacks if isinstance(c, BestMetrics))
    return {"best_epoch": tracker.best_epoch + 1, **{f"best_{k}": v for k, v in tracker.best_logs.items()}}
