"""The search loop of `qa-assistant tune`: the Optuna study (opened, resumed, requeued), trials of K
folds each, pruning, the time budget, and the best trials scored again on a second partition."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from qa_assistant.analysis.tune.outputs import (
    CONFIRMATION,
    POOL_FILE,
    STUDY_FILE,
    TRIALS_DIR,
    TuneResult,
    best_record,
    confirmation_candidates,
    shown_values,
    study_records,
    trial_name,
    write_outputs,
    write_second_partition,
    write_session,
)
from qa_assistant.analysis.tune.space import (
    Param,
    best_config,
    check_space,
    default_space,
    trial_config,
    write_pool,
)
from qa_assistant.config import Config, check_trains, load_config
from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

_STUDY = "tune"
_BUDGET_STOP = "stopped: time budget"
_FEW_QUESTIONS = 50  # held-out questions per fold below which one question moves the objective by 2 points


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
    confirm: int = 3,
) -> TuneResult:
    """Searches hyper-parameters on K folds of the training data; writes the files that
    `analysis/tune/__init__.py` lists.

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
        confirm: how many of the best trials are scored again, with the starting config, on
            a second partition into K folds (`train.seed` + 1) before `best.yaml` is
            chosen on the mean over both partitions; 0 chooses on the search's scores.

    Returns:
        Every trial of the study and the best one.

    Raises:
        UserError: bad arguments, or `root` holds a study of another config or space.

    Example:

    >>> result = tune(["experiments/configs/article_gru.yaml"], "runs/tune", budget_seconds=1800)  # doctest: +SKIP
    >>> result.best.values  # doctest: +SKIP
    {'train.learning_rate': 0.0023, 'encoder.dropout': 0.31, ...}
    """
    # deferred: TensorFlow loads after the arguments are checked
    from qa_assistant.training.callbacks import lower_is_better

    started = time.monotonic()
    base, space, identity = _starting_point(config_files, overrides, space, (folds, trials, confirm), metric)
    metric = identity["metric"]
    lower = lower_is_better(metric)
    root = Path(root)
    pool = _training_pool(base, root)
    study = _open_study(root, identity, lower, base.train.seed if seed is None else seed)
    if not study.trials:
        starting = base.flat()
        study.enqueue_trial({k: starting[k] for k in space})
    _requeue_unfinished(study)

    plan = _Plan(
        base,
        pool,
        root,
        folds,
        metric,
        started + budget_seconds,
        _timed(study, "fold_seconds"),
        _timed(study, "finish_seconds"),
    )
    checked = partial(_checked, confirm, trials, budget_seconds)
    stopped_by = _search(study, space, trials, plan, checked)
    scored = checked(plan.mean_fold() * folds)
    if scored and _confirm(study, plan, scored, lower) == "budget":
        stopped_by = "budget"
    records = study_records(study, metric)
    best = best_record(records, lower, scored)
    best_cfg = best_config(base, best.values) if best else None
    write_outputs(
        root, identity, records, best, best_cfg, lower, stopped_by, (scored, confirm if trials > 1 else 0)
    )
    return TuneResult(root, metric, lower, records, best, best_cfg, stopped_by)


_CHECK_SHARE = 1 / 3  # of a call's budget, at most, for scoring trials again on the second partition


def _checked(confirm: int, trials: int, budget_seconds: float, trial_seconds: float) -> int:
    """How many of the search's best trials the check scores again (beside the starting config).

    `confirm`, fewer when those and the starting config would take more than a third of the
    budget at `trial_seconds` each (unknown: 0), and 0 when not even the best trial and the
    starting config fit, or a single trial leaves nothing to choose between.
    """
    if confirm <= 0 or trials < 2:
        return 0
    fit = int(budget_seconds * _CHECK_SHARE // trial_seconds) - 1 if trial_seconds > 0 else confirm
    return max(min(confirm, trials, fit), 0)


@dataclass
class _Plan:
    """What every fold of the call shares: the starting config, the pool, the budget, the fold times.

    `finish_seconds` are the parts of fresh folds spent after training (saving the model,
    scoring the test split, the baseline): a fold's training stops that long (on average)
    before the budget ends, so that a fold finishing its last epoch at the deadline does not
    overrun it.
    """

    base: Config
    pool: Path
    root: Path
    folds: int
    metric: str
    budget_end: float
    fold_seconds: list[float]
    finish_seconds: list[float] = field(default_factory=list)

    def mean_fold(self) -> float:
        return float(np.mean(self.fold_seconds)) if self.fold_seconds else 0.0

    def mean_finish(self) -> float:
        return float(np.mean(self.finish_seconds)) if self.finish_seconds else 0.0


def _starting_point(
    config_files: Sequence[str | Path],
    overrides: Sequence[str],
    space: Mapping[str, Param] | None,
    counts: tuple[int, int, int],
    metric: str | None,
) -> tuple[Config, dict[str, Param], dict[str, Any]]:
    """The starting config, the checked space, and the study's identity (what resuming it must match).

    Raises:
        UserError: fewer than 2 folds or 1 trial, a negative `confirm`, or a space the config refuses.
    """
    from qa_assistant.tasks import get_task  # deferred: TensorFlow loads after the checks

    folds, trials, confirm = counts
    if folds < 2:
        raise UserError(f"--folds must be at least 2; got {folds}")
    if trials < 1:
        raise UserError(f"--trials must be at least 1; got {trials}")
    if confirm < 0:
        raise UserError(f"--confirm must be 0 or more; got {confirm}")
    base = load_config(list(config_files), list(overrides))
    check_trains(base)  # every fold would refuse it
    space = dict(space) if space is not None else default_space(base)
    check_space(base, space, folds)
    identity = {
        "config": base.to_dict(),
        "space": {k: p.spec() for k, p in space.items()},
        "folds": folds,
        "metric": metric or get_task(base).headline_metrics[0],
    }
    return base, space, identity


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


def _search(study: Any, space: Mapping[str, Param], trials: int, plan: _Plan, checked: Any) -> str:
    """Runs trials until `trials` have finished or the budget ends; returns which stopped it.

    The time to score `checked(trial seconds)` trials and the starting config again (`_confirm`)
    is kept back; trials already scored need none.
    """
    while _finished(study) < trials:
        mean_trial = plan.mean_fold() * plan.folds
        scored = checked(mean_trial)
        kept = max(scored + 1 - len(_confirmed(study, plan.folds)), 0) * mean_trial if scored else 0.0
        if time.monotonic() + mean_trial + kept > plan.budget_end:
            return "budget"
        trial = study.ask({k: _distribution(p) for k, p in space.items()})
        if _run_trial(trial, plan) == "budget":
            return "budget"
    return "trials"


def _timed(study: Any, key: str) -> list[float]:
    """The per-trial means of `key` (`fold_seconds`, `finish_seconds`) that earlier calls recorded."""
    return [t.user_attrs[key] for t in study.trials if key in t.user_attrs]


def _confirmed(study: Any, folds: int) -> dict[str, list[float]]:
    """Trial name -> its scores on the second partition, for the trials whose every fold ran there."""
    scores = study.user_attrs.get(CONFIRMATION, {})
    return {name: s for name, s in scores.items() if len(s) == folds}


def _confirm(study: Any, plan: _Plan, confirm: int, lower: bool) -> str:
    """Scores the best `confirm` complete trials and the starting config on a second partition.

    The search picks its best of many noisy K-fold scores, which flatters it (the winner's
    curse); the same K folds drawn with `train.seed` + 1 (other held-out questions, other
    initial weights) score the candidates again, side by side. The scores are kept in the
    study (a rerun reuses them, and a finished fold run is reused as in the search). Returns
    `trials` when every candidate was scored, `budget` when time ran out first.

    Raises:
        UserError: a candidate's training failed on the second partition.
    """
    records = study_records(study, plan.metric)
    scores = dict(study.user_attrs.get(CONFIRMATION, {}))
    seed = plan.base.train.seed + 1
    for record in confirmation_candidates(records, confirm, lower):
        if record.confirmed:
            continue
        config = trial_config(plan.base, plan.pool, record.values, plan.folds)
        parent = plan.root / TRIALS_DIR / record.name
        log.info("tune: trial %d scored again on a second partition (seed %d)", record.number, seed)
        got = []
        for fold in range(plan.folds):
            try:
                result = _train_fold(record.number, config, parent, (fold, plan.folds), plan, seed=seed)
            except _TrialStoppedError as stop:
                if stop.outcome == "budget":
                    return "budget"
                raise UserError(f"tune: trial {record.number} on the second partition {stop.note}") from None
            got.append(float(result.metrics[plan.metric]))
        scores[record.name] = record.second = got
        study.set_user_attr(CONFIRMATION, scores)
        write_second_partition(plan.root, record.name, plan.metric, got, record.both)
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


def _run_trial(trial: Any, plan: _Plan) -> str:
    """Trains the trial's folds; tells the study the outcome. Returns complete, pruned, failed or budget."""
    import optuna

    # deferred: TensorFlow loads after the arguments are checked
    from qa_assistant.analysis.kfold import summarize, write_summary

    states = optuna.trial.TrialState
    values, folds, metric, root = dict(trial.params), plan.folds, plan.metric, plan.root
    name = trial_name(values)
    trial.set_user_attr("name", name)
    parent = root / TRIALS_DIR / name
    config = trial_config(plan.base, plan.pool, values, folds)
    seed = config.train.seed
    log.info("tune: trial %d (%s): %s", trial.number, name, shown_values(values))
    started = time.monotonic()
    scores, results = [], []
    for fold in range(folds):
        timed = len(plan.fold_seconds)
        try:
            result = _train_fold(trial.number, config, parent, (fold, folds), plan, seed=seed)
        except _TrialStoppedError as stop:
            return _end(trial, states.FAIL, stop.note, scores, stop.outcome)
        if len(plan.fold_seconds) > timed:
            trial.set_user_attr("fold_seconds", plan.mean_fold())
            trial.set_user_attr("finish_seconds", plan.mean_finish())
        scores.append(_score(trial, result.metrics, metric, first=trial.number == 0 and fold == 0))
        results.append(result)
        trial.report(float(np.mean(scores)), fold)
        if fold < folds - 1 and trial.should_prune():
            trial.set_user_attr("seconds", time.monotonic() - started)
            write_session(root, name, values, metric, scores)
            return _end(trial, states.PRUNED, f"pruned after {fold + 1} folds", scores, "pruned")
    summary = summarize([r.metrics for r in results])
    write_summary(parent, summary, [r.run_dir for r in results], folds=folds, seeds=[seed])
    trial.set_user_attr("seconds", time.monotonic() - started)
    trial.set_user_attr("scores", scores)
    _tell(trial, value=float(np.mean(scores)))
    write_session(root, name, values, metric, scores)
    log.info("tune: trial %d: %s %.4f (mean of %d folds)", trial.number, metric, np.mean(scores), folds)
    return "complete"


class _TrialStoppedError(Exception):
    """A fold could not finish: the budget ran out (`budget`) or training failed (`failed`)."""

    def __init__(self, outcome: str, note: str) -> None:
        super().__init__(note)
        self.outcome, self.note = outcome, note


def _train_fold(
    number: int, config: Config, parent: Path, fold_of: tuple[int, int], plan: _Plan, *, seed: int
) -> Any:
    """Trains fold `fold_of[0]` of `fold_of[1]` for trial `number` in the partition of `seed` (reusing
    a finished one); adds its time to `plan.fold_seconds`, and its time after training to
    `plan.finish_seconds`, if it started fresh. Its training stops `plan.mean_finish()` before the
    budget ends, which leaves the time its evaluation takes on average.

    Raises:
        _TrialStoppedError: no time for another fold, the budget ran out inside it
            (it resumes there), or training failed with a user error.
    """
    # deferred: TensorFlow loads after the arguments are checked
    from qa_assistant.analysis.kfold import fold_config, fold_directory
    from qa_assistant.layout import CHECKPOINTS_DIR
    from qa_assistant.training.callbacks import DeadlineError
    from qa_assistant.training.resume import latest_snapshot
    from qa_assistant.training.runner import train_run

    fold, folds = fold_of
    if time.monotonic() + plan.mean_fold() > plan.budget_end:
        raise _TrialStoppedError("budget", _BUDGET_STOP)
    fold_started = time.monotonic()
    directory = fold_directory(parent, seed, fold)
    # A fold with a saved epoch resumes from it: its time would be only the remainder.
    fresh = latest_snapshot(directory / CHECKPOINTS_DIR) is None
    try:
        result = train_run(
            fold_config(config, folds, fold, seed),
            directory,
            deadline=time.time() + (plan.budget_end - time.monotonic()) - plan.mean_finish(),
        )
    except DeadlineError:
        log.info("tune: the budget ran out in fold %d of trial %d (it resumes there)", fold, number)
        raise _TrialStoppedError("budget", _BUDGET_STOP) from None
    except UserError as error:
        log.warning("tune: trial %d failed: %s", number, error)
        raise _TrialStoppedError("failed", f"failed: {error}") from None
    if fresh and not result.already_finished:  # the mean fold time that decides whether another fits
        plan.fold_seconds.append(time.monotonic() - fold_started)
        if result.finish_seconds is not None:
            plan.finish_seconds.append(result.finish_seconds)
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
