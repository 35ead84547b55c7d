"""`qa-assistant tune`: hyper-parameter search with a k-fold objective on the training data alone.

    OUTPUT/
      pool.jsonl          the pairs the search may see: the config's training and validation
                          split (its test split, or its test file, is left out), cleaned
      study.db            the Optuna study (SQLite): rerunning the command resumes it
      trials/NAME/        one k-fold parent per trial (seed-S/fold-I run directories, kfold.json)
      hparams/NAME/       one TensorBoard HParams session per trial: the searched values and
                          the objective (`qa-assistant tensorboard OUTPUT/hparams`)
      trials.md           every trial: values, objective mean ± std over folds, state, time
      tune.json           the same for scripts, with the search space and the best trial
      best.yaml           the starting config with the best trial's values: train it as usual

**Objective.** Each trial trains the config with its values on K folds of
the pool (`data.folds`; each fold's validation, for early stopping, comes
from the other folds) and scores the held-out fold with the task's headline
metric (`--metric`). The objective is the mean over folds. The reported test
split never takes part: the pool is what `qa-assistant train` would train
and validate on, so training `best.yaml` afterwards reports on data the
search never saw.

**Search.** Optuna's TPE sampler (seeded), with the starting config's own
values as the first trial, so the best config is never worse on the
objective than the default it started from. A trial whose running mean
after two folds falls below the median of earlier trials at that point is
pruned (`MedianPruner`).

**Budget and resuming.** No trial starts when the time left (`--budget`)
is shorter than the trials so far have taken on average, no fold starts
when it would not fit, and a fold still training when the budget runs out
stops after its current batch (`callbacks.Deadline`; its run directory
stays resumable from its last epoch). Stopped, failed and interrupted
trials are queued again when the command is rerun with the same arguments; their
finished folds are reused and an unfinished one resumes (a trial's
directory is named after its values). The evaluation that ends a fold is
not interrupted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qa_assistant.atomic import write_text
from qa_assistant.config import Config, from_dict, load_config
from qa_assistant.errors import UserError
from qa_assistant.manifest import write_json

log = logging.getLogger(__name__)

POOL_FILE = "pool.jsonl"
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
HPARAMS_DIR = "hparams"
TRIALS_TABLE = "trials.md"
TUNE_JSON = "tune.json"
BEST_YAML = "best.yaml"
_STUDY = "tune"
_BUDGET_STOP = "stopped: time budget"
_FEW_QUESTIONS = 50  # held-out questions per fold below which one question moves the objective by 2 points


@dataclass(frozen=True)
class Param:
    """One searched key: a float or int range (optionally log-scaled) or a list of choices."""

    key: str
    kind: str  # "float", "int" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def spec(self) -> str:
        """The `--space` form of this parameter."""
        if self.kind == "choice":
            return ",".join(json.dumps(c) if not isinstance(c, str) else c for c in self.choices)
        prefix = ("log:" if self.log else "") + ("int:" if self.kind == "int" else "")
        return f"{prefix}{_number(self.low)}:{_number(self.high)}"


def _number(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_param(item: str) -> Param:
    """`KEY=SPEC`: `low:high` (uniform float), `log:low:high`, `int:low:high`, `log:int:low:high`,
    or `a,b,c` (choices, each read as YAML).

    Raises:
        UserError: no `=`, an empty key or spec, a bad range.

    Examples:

    >>> parse_param("train.learning_rate=log:1e-4:1e-2")
    Param(key='train.learning_rate', kind='float', low=0.0001, high=0.01, log=True, choices=())
    >>> parse_param("encoder.units=64,128").choices
    (64, 128)
    """
    key, sep, spec = item.partition("=")
    key, spec = key.strip(), spec.strip()
    form = "section.key=low:high, log:low:high, int:low:high or a,b,c"
    if not sep or "." not in key or not spec:
        raise UserError(f"search space item '{item}' is not of the form {form}")
    if ":" not in spec:
        return Param(key, "choice", choices=tuple(yaml.safe_load(v) for v in spec.split(",")))
    parts = spec.split(":")
    log_scale = parts[0] == "log"
    parts = parts[1:] if log_scale else parts
    kind = "int" if parts[0] == "int" else "float"
    parts = parts[1:] if kind == "int" else parts
    try:
        low, high = (int(p) if kind == "int" else float(p) for p in parts)
    except ValueError:
        raise UserError(f"search space item '{item}' is not of the form {form}") from None
    if not low < high or (log_scale and low <= 0):
        raise UserError(
            f"search space item '{item}': expected low < high{' and low > 0 on a log scale' if log_scale else ''}"
        )
    return Param(key, kind, low, high, log_scale)


def parse_space(items: Sequence[str]) -> dict[str, Param]:
    """`--space` items to `{key: Param}`; a key given twice is an error."""
    space: dict[str, Param] = {}
    for item in items:
        param = parse_param(item)
        if param.key in space:
            raise UserError(f"search space key '{param.key}' is given twice; expected each key once")
        space[param.key] = param
    return space


def default_space(config: Config) -> dict[str, Param]:
    """What a careful practitioner would search first for this config's task and encoder.

    Every config: the learning rate, log-uniform from a fifth to five times the
    config's. Encoders trained from scratch: encoder and embedding dropout and
    the width (half, same, double). Pretrained encoders: how many lower blocks
    stay frozen and, without early stopping, the number of epochs. Retrieval
    with a fixed temperature: the temperature. Classification: label
    smoothing. LoRA: the rank.
    """
    lr = config.train.learning_rate
    space = [Param("train.learning_rate", "float", lr / 5, lr * 5, log=True)]
    encoder, task = config.encoder, config.task.type
    if task == "lm":
        space.append(Param("lm.lora_rank", "choice", choices=_with(config.lm.lora_rank, (4, 8, 16))))
    elif encoder.type == "pretrained":
        space.append(Param("encoder.freeze", "choice", choices=_with(encoder.freeze, ("none", "2", "4"))))
    else:
        space.append(Param("encoder.dropout", "float", 0.0, 0.5))
        space.append(Param("embedding.dropout", "float", 0.0, 0.5))
        units = encoder.units
        space.append(Param("encoder.units", "choice", choices=_with(units, (max(units // 2, 8), units * 2))))
    if task != "lm" and config.train.early_stopping == 0:
        epochs = config.train.epochs
        space.append(Param("train.epochs", "int", 1, max(4, 2 * epochs)))
    if task == "classify":
        space.append(Param("task.label_smoothing", "float", 0.0, 0.2))
    if task == "retrieve" and not config.task.learn_temperature:
        space.append(Param("task.temperature", "float", 0.02, 0.2, log=True))
    return {p.key: p for p in space}


def _with(value: Any, choices: tuple[Any, ...]) -> tuple[Any, ...]:
    """`choices` with the config's own value among them (first, as the starting trial uses it)."""
    return (value, *(c for c in choices if c != value))


@dataclass
class TrialRecord:
    """One trial as reported: its values, fold scores and outcome."""

    number: int
    name: str
    values: dict[str, Any]
    state: str
    scores: list[float]
    seconds: float
    note: str = ""

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores)) if self.scores else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else math.nan


@dataclass
class TuneResult:
    """What `tune` reports."""

    root: Path
    metric: str
    lower_is_better: bool
    trials: list[TrialRecord]
    best: TrialRecord | None
    best_config: Config | None
    stopped_by: str


def trial_name(values: Mapping[str, Any]) -> str:
    """A directory name fixed by a trial's values (so a queued-again trial finds its finished folds)."""
    digest = hashlib.sha256(json.dumps(dict(values), sort_keys=True, default=str).encode()).hexdigest()
    return "trial-" + digest[:10]


def write_pool(config: Config, path: Path) -> int:
    """The pairs the search may use (the config's train + validation split) as JSONL; returns the row count.

    Raises:
        UserError: the config already sets `data.folds` (tune makes its own folds).
    """
    import pandas as pd

    from qa_assistant.data.dataset import load_qa_data  # deferred: pulls in TensorFlow via sources

    if config.data.folds:
        raise UserError(
            f"data.folds is {config.data.folds}; tune makes its own folds, expected a config without data.folds"
        )
    splits = load_qa_data(config).splits
    pool = pd.concat([splits.train, splits.validation], ignore_index=True)
    write_text(path, pool.to_json(orient="records", lines=True, force_ascii=False))
    return len(pool)


def trial_config(base: Config, pool: Path, values: Mapping[str, Any], folds: int) -> Config:
    """`base` with the searched values, reading the pool in K folds (the test file unused).

    Raises:
        UserError: a value the config refuses, naming the key.
    """
    data = base.to_dict()
    data["data"].update(
        train=str(pool), test=None, question_column="question", answer_column="answer", folds=folds, fold=0
    )
    return from_dict(_with_values(data, values))


def _with_values(data: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A config dict with `section.key` values set in it (in place; returned).

    Raises:
        UserError: a key that is not a config key.
    """
    for key, value in values.items():
        section, _, name = key.partition(".")
        if section not in data or name not in data[section]:
            raise UserError(
                f"search space key '{key}' is not a config key; expected section.key, e.g. train.epochs"
            )
        data[section][name] = value
    return data


def check_space(base: Config, space: Mapping[str, Param], folds: int) -> None:
    """Every key exists and every choice and range end passes the config's validation (before training).

    Raises:
        UserError: naming the key and the value refused.
    """
    for key, param in space.items():
        ends = param.choices if param.kind == "choice" else (param.low, param.high)
        for value in ends:
            value = int(value) if param.kind == "int" else value
            try:
                trial_config(base, Path(POOL_FILE), {key: value}, folds)
            except UserError as error:
                raise UserError(f"search space {key}={param.spec()}: {error}") from None


def best_config(base: Config, values: Mapping[str, Any]) -> Config:
    """The starting config (its own data settings) with a trial's values."""
    return from_dict(_with_values(base.to_dict(), values))


def tune(
    config_files: Sequence[str | Path],
    root: str | Path,
    *,
    overrides: Sequence[str] = (),
    space: Mapping[str, Param] | None = None,
    folds: int = 3,
    trials: int = 20,
    budget_seconds: float = 3600.0,
    metric: str | None = None,
    seed: int | None = None,
) -> TuneResult:
    """Searches hyper-parameters on K folds of the training data; writes the files listed above.

    Args:
        config_files: the starting config (merged left to right).
        root: the study's directory (and TensorBoard root).
        overrides: `section.key=value` applied to the starting config.
        space: `{key: Param}`; `None` for `default_space(config)`.
        folds: K of the k-fold objective (at least 2).
        trials: trials to have finished (counting earlier runs of the study) before stopping.
        budget_seconds: wall-clock budget of this call.
        metric: the objective's metric (default: the task's first headline metric).
        seed: the sampler's seed (default: `train.seed`).

    Returns:
        Every trial of the study and the best one.

    Raises:
        UserError: bad arguments, or `root` holds a study of another config or space.

    Example:

    >>> result = tune(["experiments/configs/article_gru.yaml"], "runs/tune", budget_seconds=1800)  # doctest: +SKIP
    >>> result.best.values  # doctest: +SKIP
    {'train.learning_rate': 0.0023, 'encoder.dropout': 0.31, ...}
    """
    from qa_assistant.tasks import get_task
    from qa_assistant.training.callbacks import lower_is_better

    started = time.monotonic()
    if folds < 2:
        raise UserError(f"--folds must be at least 2; got {folds}")
    if trials < 1:
        raise UserError(f"--trials must be at least 1; got {trials}")
    base = load_config(list(config_files), list(overrides))
    space = dict(space) if space is not None else default_space(base)
    metric = metric or get_task(base).headline_metrics[0]
    lower = lower_is_better(metric)
    check_space(base, space, folds)
    root = Path(root)
    identity = {
        "config": base.to_dict(),
        "space": {k: p.spec() for k, p in space.items()},
        "folds": folds,
        "metric": metric,
    }
    pool = _training_pool(base, root)
    study = _open_study(root, identity, lower, base.train.seed if seed is None else seed)
    if not study.trials:
        starting = base.flat()
        study.enqueue_trial({k: starting[k] for k in space})
    _requeue_unfinished(study)

    stopped_by = _search(study, space, trials, started + budget_seconds, base, pool, root, folds, metric)
    records = _records(study, metric)
    best = _best(records, lower)
    best_cfg = best_config(base, best.values) if best else None
    _write_outputs(root, identity, records, best, best_cfg, lower, stopped_by, space)
    return TuneResult(root, metric, lower, records, best, best_cfg, stopped_by)


def _training_pool(base: Config, root: Path) -> Path:
    """The study's training pairs (`POOL_FILE` in `root`), written by its first call."""
    pool = root / POOL_FILE
    if pool.exists():
        return pool
    created = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        rows = write_pool(base, pool)
    except UserError:
        if created:
            shutil.rmtree(root, ignore_errors=True)  # a bad data file leaves nothing behind
        raise
    log.info("tune: %d training pairs in %s (the config's test split is left out)", rows, pool)
    return pool


def _search(
    study: Any,
    space: Mapping[str, Param],
    trials: int,
    budget_end: float,
    base: Config,
    pool: Path,
    root: Path,
    folds: int,
    metric: str,
) -> str:
    """Runs trials until `trials` have finished or the budget ends; returns which stopped it."""
    fold_seconds: list[float] = [
        t.user_attrs["fold_seconds"] for t in study.trials if "fold_seconds" in t.user_attrs
    ]
    while _finished(study) < trials:
        mean_trial = float(np.mean(fold_seconds)) * folds if fold_seconds else 0.0
        if time.monotonic() + mean_trial > budget_end:
            return "budget"
        trial = study.ask({k: _distribution(p) for k, p in space.items()})
        if _run_trial(trial, base, pool, root, folds, metric, budget_end, fold_seconds) == "budget":
            return "budget"
    return "trials"


def _open_study(root: Path, identity: dict[str, Any], lower: bool, seed: int) -> Any:
    """The study in `root` (created, or loaded when its identity matches), with a TPE sampler."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=_STUDY,
        storage=f"sqlite:///{root / STUDY_FILE}",
        load_if_exists=True,
        direction="minimize" if lower else "maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1),
    )
    _check_identity(study, identity, root)
    # A resumed study must not draw the first call's values again: its sampler's seed moves on.
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return study


def _distribution(param: Param) -> Any:
    import optuna

    d = optuna.distributions
    if param.kind == "choice":
        return d.CategoricalDistribution(list(param.choices))
    if param.kind == "int":
        return d.IntDistribution(int(param.low), int(param.high), log=param.log)
    return d.FloatDistribution(float(param.low), float(param.high), log=param.log)


def _check_identity(study: Any, identity: dict[str, Any], root: Path) -> None:
    recorded = study.user_attrs.get("identity")
    current = json.loads(json.dumps(identity, default=str))  # as the study stores it
    if recorded is None:
        study.set_user_attr("identity", current)
        return
    if recorded != current:
        changed = [k for k in current if recorded.get(k) != current[k]]
        raise UserError(
            f"'{root}' holds a tuning study with another {', '.join(changed)}; "
            "expected the same arguments to resume it, or a new --output"
        )


def _requeue_unfinished(study: Any) -> None:
    """Trials that a previous call left running (killed), stopped for time or failed are queued again, once."""
    import optuna

    states = optuna.trial.TrialState
    requeued = set(study.user_attrs.get("requeued", []))
    queued = {json.dumps(t.params, sort_keys=True) for t in study.trials if t.state == states.WAITING}
    for t in study.trials:
        # Failed trials too: a user error (a full disk, a directory in the way) may be fixed by now.
        unfinished = t.state in (states.RUNNING, states.FAIL)
        if not unfinished or t.number in requeued:
            continue
        if t.state == states.RUNNING:
            study.tell(t.number, state=states.FAIL)  # the call running it was killed
        requeued.add(t.number)
        key = json.dumps(t.params, sort_keys=True)
        if t.params and key not in queued:
            study.enqueue_trial(t.params)
            queued.add(key)
    study.set_user_attr("requeued", sorted(requeued))


def _finished(study: Any) -> int:
    import optuna

    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return sum(t.state in done for t in study.trials)


def _run_trial(
    trial: Any,
    base: Config,
    pool: Path,
    root: Path,
    folds: int,
    metric: str,
    budget_end: float,
    fold_seconds: list[float],
) -> str:
    """Trains the trial's folds; tells the study the outcome. Returns complete, pruned, failed or budget."""
    import optuna

    from qa_assistant.analysis.kfold import summarize, write_summary

    states = optuna.trial.TrialState
    values = dict(trial.params)
    name = trial_name(values)
    trial.set_user_attr("name", name)
    parent = root / TRIALS_DIR / name
    config = trial_config(base, pool, values, folds)
    seed = config.train.seed
    log.info("tune: trial %d (%s): %s", trial.number, name, _shown_values(values))
    started = time.monotonic()
    scores, results = [], []
    for fold in range(folds):
        try:
            result = _train_fold(trial, config, parent, (fold, folds), budget_end, fold_seconds)
        except _TrialStoppedError as stop:
            return _end(trial, states.FAIL, stop.note, scores, stop.outcome)
        scores.append(_score(trial, result.metrics, metric, first=trial.number == 0 and fold == 0))
        results.append(result)
        trial.report(float(np.mean(scores)), fold)
        if fold < folds - 1 and trial.should_prune():
            trial.set_user_attr("seconds", time.monotonic() - started)
            _write_session(root, name, values, metric, scores)
            return _end(trial, states.PRUNED, f"pruned after {fold + 1} folds", scores, "pruned")
    summary = summarize([r.metrics for r in results])
    write_summary(parent, summary, [r.run_dir for r in results], folds=folds, seeds=[seed])
    trial.set_user_attr("seconds", time.monotonic() - started)
    trial.set_user_attr("scores", scores)
    _tell(trial, value=float(np.mean(scores)))
    _write_session(root, name, values, metric, scores)
    log.info("tune: trial %d: %s %.4f (mean of %d folds)", trial.number, metric, np.mean(scores), folds)
    return "complete"


class _TrialStoppedError(Exception):
    """A fold could not finish: the budget ran out (`budget`) or training failed (`failed`)."""

    def __init__(self, outcome: str, note: str) -> None:
        super().__init__(note)
        self.outcome, self.note = outcome, note


def _train_fold(
    trial: Any,
    config: Config,
    parent: Path,
    fold_of: tuple[int, int],
    budget_end: float,
    fold_seconds: list[float],
) -> Any:
    """Trains fold `fold_of[0]` of `fold_of[1]` (reusing a finished one); records its time if it started fresh.

    Raises:
        _TrialStoppedError: no time for another fold, the budget ran out inside it
            (it resumes there), or training failed with a user error.
    """
    from qa_assistant.analysis.kfold import fold_config, fold_directory
    from qa_assistant.layout import CHECKPOINTS_DIR
    from qa_assistant.training.callbacks import DeadlineError
    from qa_assistant.training.resume import latest_snapshot
    from qa_assistant.training.runner import train_run

    fold, folds = fold_of
    seed = config.train.seed
    mean_fold = float(np.mean(fold_seconds)) if fold_seconds else 0.0
    if time.monotonic() + mean_fold > budget_end:
        raise _TrialStoppedError("budget", _BUDGET_STOP)
    fold_started = time.monotonic()
    directory = fold_directory(parent, seed, fold)
    # A fold with a saved epoch resumes from it: its time would be only the remainder.
    fresh = latest_snapshot(directory / CHECKPOINTS_DIR) is None
    try:
        result = train_run(
            fold_config(config, folds, fold, seed),
            directory,
            deadline=time.time() + (budget_end - time.monotonic()),
        )
    except DeadlineError:
        log.info("tune: the budget ran out in fold %d of trial %d (it resumes there)", fold, trial.number)
        raise _TrialStoppedError("budget", _BUDGET_STOP) from None
    except UserError as error:
        log.warning("tune: trial %d failed: %s", trial.number, error)
        raise _TrialStoppedError("failed", f"failed: {error}") from None
    if fresh:  # the mean fold time that decides whether another fold fits the budget
        fold_seconds.append(time.monotonic() - fold_started)
        trial.set_user_attr("fold_seconds", float(np.mean(fold_seconds)))
    return result


def _end(trial: Any, state: Any, note: str, scores: list[float], outcome: str) -> str:
    """Records why a trial ended early and tells the study; returns `outcome`."""
    trial.set_user_attr("note", note)
    trial.set_user_attr("scores", scores)
    _tell(trial, state)
    return outcome


def _score(trial: Any, metrics: Mapping[str, Any], metric: str, *, first: bool) -> float:
    """The fold's objective value (and, on the study's first fold, a warning when it tests few questions).

    Raises:
        UserError: `metric` is not among the run's metrics (the trial is failed first).
    """
    import optuna

    if metric not in metrics:
        _tell(trial, optuna.trial.TrialState.FAIL)
        numeric = (k for k, v in metrics.items() if isinstance(v, int | float))
        raise UserError(
            f"--metric {metric} is not among the run's metrics; expected one of {', '.join(numeric)}"
        )
    tested = int(metrics.get("num_questions", _FEW_QUESTIONS))
    if first and tested < _FEW_QUESTIONS:
        log.warning(
            "tune: a fold tests %d questions only, so the objective is noisy; expected at least %d "
            "(fewer --folds, or a target with more questions per class)",
            tested,
            _FEW_QUESTIONS,
        )
    return float(metrics[metric])


def _tell(trial: Any, state: Any = None, value: float | None = None) -> None:
    trial.study.tell(trial, value, state=state)


def _shown_values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _write_session(
    root: Path, name: str, values: Mapping[str, Any], metric: str, scores: list[float]
) -> None:
    """One HParams session per trial: its searched values and the fold mean (and spread) of the metric."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    hparams = {k: v if isinstance(v, bool | int | float | str) else json.dumps(v) for k, v in values.items()}
    writer = tf.summary.create_file_writer(str(root / HPARAMS_DIR / name))
    with writer.as_default():
        hp.hparams(hparams, trial_id=name)
        tf.summary.scalar(f"cv_{metric}", float(np.mean(scores)), step=0)
        tf.summary.scalar("folds_run", float(len(scores)), step=0)
        if len(scores) > 1:
            tf.summary.scalar(f"cv_{metric}_std", float(np.std(scores, ddof=1)), step=0)
    writer.close()


def _records(study: Any, metric: str) -> list[TrialRecord]:
    import optuna

    states = optuna.trial.TrialState
    records = []
    for t in study.trials:
        if t.state in (states.WAITING, states.RUNNING):
            continue
        state = {states.COMPLETE: "complete", states.PRUNED: "pruned"}.get(t.state, "stopped")
        seconds = t.user_attrs.get("seconds")
        if seconds is None and t.datetime_start and t.datetime_complete:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        records.append(
            TrialRecord(
                number=t.number,
                name=t.user_attrs.get("name", trial_name(t.params)),
                values=dict(t.params),
                state=state,
                scores=[float(s) for s in t.user_attrs.get("scores", [])],
                seconds=float(seconds or 0.0),
                note=t.user_attrs.get("note", ""),
            )
        )
    return records


def _best(records: Sequence[TrialRecord], lower: bool) -> TrialRecord | None:
    complete = [r for r in records if r.state == "complete"]
    if not complete:
        return None
    return min(complete, key=lambda r: r.mean) if lower else max(complete, key=lambda r: r.mean)


def trials_table(records: Sequence[TrialRecord], metric: str, best: TrialRecord | None) -> str:
    """Markdown: one row per trial, its values, the objective (mean ± std over folds), state and time."""
    keys = list(dict.fromkeys(k for r in records for k in r.values))
    lines = [
        "| trial | " + " | ".join(keys) + f" | CV {metric} | folds | state | seconds |",
        "|---:|" + "---|" * len(keys) + "---:|---:|---|---:|",
    ]
    for r in records:
        shown = "" if not r.scores else f"{r.mean:.4f}" + ("" if math.isnan(r.std) else f" ± {r.std:.4f}")
        mark = " **best**" if best is not None and r.number == best.number else ""
        cells = [str(r.number), *(_short(r.values.get(k, "")) for k in keys), shown, str(len(r.scores))]
        note = r.note if len(r.note) <= 60 else r.note[:57] + "... (tune.json)"  # a failure's whole message
        cells += [(note or r.state) + mark, f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_outputs(
    root: Path,
    identity: dict[str, Any],
    records: list[TrialRecord],
    best: TrialRecord | None,
    best_cfg: Config | None,
    lower: bool,
    stopped_by: str,
    space: Mapping[str, Param],
) -> None:
    metric = identity["metric"]
    write_text(root / TRIALS_TABLE, trials_table(records, metric, best) + "\n")
    write_json(
        root / TUNE_JSON,
        {
            "metric": metric,
            "objective": f"mean {metric} over {identity['folds']} folds of {POOL_FILE} (test split left out)",
            "lower_is_better": lower,
            "space": identity["space"],
            "stopped_by": stopped_by,
            "best": None if best is None else _record_dict(best),
            "trials": [_record_dict(r) for r in records],
        },
    )
    if best_cfg is None:
        return
    starting = _starting_record(records)
    header = [
        "# Written by qa-assistant tune: the starting config with the best trial's values.",
        f"# Objective: mean {metric} over {identity['folds']} folds of the training data "
        "(the test split was not used).",
        f"# Best: trial {best.number}, {best.mean:.4f} ± {best.std:.4f}; "
        + (
            f"starting config (trial {starting.number}): {starting.mean:.4f} ± {starting.std:.4f}."
            if starting is not None and starting.state == "complete"
            else "the starting config's trial did not finish."
        ),
        f"# Searched: {', '.join(f'{k}={p.spec()}' for k, p in space.items())}",
        f"# Values: {_shown_values(best.values)}",
    ]
    body = yaml.safe_dump(best_cfg.to_dict(), sort_keys=False)
    write_text(root / BEST_YAML, "\n".join(header) + "\n" + body)


def _starting_record(records: Sequence[TrialRecord]) -> TrialRecord | None:
    """Trial 0 (the starting config's values), or its requeued copy that completed where it did not."""
    first = next((r for r in records if r.number == 0), None)
    if first is None or first.state == "complete":
        return first
    return next((r for r in records if r.values == first.values and r.state == "complete"), first)


def _record_dict(record: TrialRecord) -> dict[str, Any]:
    return {
        "number": record.number,
        "name": record.name,
        "values": record.values,
        "state": record.state,
        "scores": record.scores,
        "mean": None if math.isnan(record.mean) else record.mean,
        "std": None if math.isnan(record.std) else record.std,
        "seconds": record.seconds,
        "note": record.note,
    }
