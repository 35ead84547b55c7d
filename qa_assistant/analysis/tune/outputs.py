"""What `qa-assistant tune` writes: the file names, one HParams session per trial, the trials table,
`tune.json` and `best.yaml`."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qa_assistant.atomic import write_text
from qa_assistant.config import Config
from qa_assistant.manifest import write_json

POOL_FILE = "pool.jsonl"
STUDY_FILE = "study.db"
TRIALS_DIR = "trials"
HPARAMS_DIR = "hparams"
TRIALS_TABLE = "trials.md"
TUNE_JSON = "tune.json"
BEST_YAML = "best.yaml"
CONFIRMATION = "confirmation"  # the study's attribute: trial name -> its scores on the second partition


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
    second: list[float] = field(default_factory=list)  # scores on the second partition (candidates only)

    @property
    def mean(self) -> float:
        return float(np.mean(self.scores)) if self.scores else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.scores, ddof=1)) if len(self.scores) > 1 else math.nan

    @property
    def confirmed(self) -> bool:
        """Scored on every fold of both partitions."""
        return bool(self.scores) and len(self.second) == len(self.scores)

    @property
    def both(self) -> float:
        """The mean over both partitions' folds (NaN until confirmed)."""
        return float(np.mean(self.scores + self.second)) if self.confirmed else math.nan


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


def write_session(root: Path, name: str, values: Mapping[str, Any], metric: str, scores: list[float]) -> None:
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


def write_second_partition(root: Path, name: str, metric: str, scores: list[float], both: float) -> None:
    """Adds a confirmed trial's scores on the second partition, and over both, to its HParams session."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(root / HPARAMS_DIR / name))
    with writer.as_default():
        tf.summary.scalar(f"cv_{metric}_second_partition", float(np.mean(scores)), step=0)
        tf.summary.scalar(f"cv_{metric}_both_partitions", both, step=0)
    writer.close()


def study_records(study: Any, metric: str) -> list[TrialRecord]:
    import optuna

    states = optuna.trial.TrialState
    second = study.user_attrs.get(CONFIRMATION, {})
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
        if t.state == states.COMPLETE:
            records[-1].second = [float(s) for s in second.get(records[-1].name, [])]
    return records


def confirmation_candidates(records: Sequence[TrialRecord], confirm: int, lower: bool) -> list[TrialRecord]:
    """The `confirm` best complete trials by the search's scores and the starting config, one per
    set of values; none when fewer than two differ (there is nothing to choose between)."""
    complete = sorted((r for r in records if r.state == "complete"), key=lambda r: r.mean, reverse=not lower)
    starting = _starting_record(records)
    chosen = complete[:confirm] + (
        [starting] if starting is not None and starting.state == "complete" else []
    )
    unique: dict[str, TrialRecord] = {}
    for record in chosen:
        unique.setdefault(record.name, record)
    return list(unique.values()) if confirm > 0 and len(unique) > 1 else []


def best_record(records: Sequence[TrialRecord], lower: bool, confirm: int = 0) -> TrialRecord | None:
    """The best complete trial: on the mean over both partitions when every candidate of the
    confirmation (`confirmation_candidates`) was scored again, else on the search's scores."""
    pool = confirmation_candidates(records, confirm, lower)
    key = "both"
    if not pool or not all(r.confirmed for r in pool):
        pool, key = [r for r in records if r.state == "complete"], "mean"
    if not pool:
        return None
    return (min if lower else max)(pool, key=lambda r: getattr(r, key))


def trials_table(records: Sequence[TrialRecord], metric: str, best: TrialRecord | None) -> str:
    """Markdown: one row per trial, its values, the objective (mean ± std over folds), state and time;
    with a confirmation, each candidate's score on the second partition and over both."""
    keys = list(dict.fromkeys(k for r in records for k in r.values))
    confirmed = any(r.second for r in records)
    extra = " 2nd partition | both |" if confirmed else ""
    lines = [
        "| trial | " + " | ".join(keys) + f" | CV {metric} | folds |{extra} state | seconds |",
        "|---:|" + "---|" * len(keys) + "---:|---:|" + ("---:|---:|" if confirmed else "") + "---|---:|",
    ]
    for r in records:
        mark = " **best**" if best is not None and r.number == best.number else ""
        cells = [
            str(r.number),
            *(_short(r.values.get(k, "")) for k in keys),
            _spread(r.scores),
            str(len(r.scores)),
        ]
        if confirmed:
            cells += [_spread(r.second), "" if math.isnan(r.both) else f"{r.both:.4f}"]
        note = r.note if len(r.note) <= 60 else r.note[:57] + "... (tune.json)"  # a failure's whole message
        cells += [(note or r.state) + mark, f"{r.seconds:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spread(scores: Sequence[float]) -> str:
    if not scores:
        return ""
    return f"{np.mean(scores):.4f}" + (f" ± {np.std(scores, ddof=1):.4f}" if len(scores) > 1 else "")


def write_outputs(
    root: Path,
    identity: dict[str, Any],
    records: list[TrialRecord],
    best: TrialRecord | None,
    best_cfg: Config | None,
    lower: bool,
    stopped_by: str,
    confirm: tuple[int, int] = (0, 0),
) -> None:
    """trials.md, tune.json and best.yaml; `confirm` is (trials scored again, `--confirm`)."""
    (confirm, requested), metric, folds = confirm, identity["metric"], identity["folds"]
    second_seed = identity["config"]["train"]["seed"] + 1
    candidates = confirmation_candidates(records, confirm, lower)
    on_both = bool(candidates) and all(r.confirmed for r in candidates)
    write_text(root / TRIALS_TABLE, trials_table(records, metric, best) + "\n")
    write_json(
        root / TUNE_JSON,
        {
            "metric": metric,
            "objective": f"mean {metric} over {folds} folds of {POOL_FILE} (test split left out)",
            "lower_is_better": lower,
            "space": identity["space"],
            "stopped_by": stopped_by,
            "confirmation": {
                "requested": requested,
                "scored_again": confirm,
                "candidates": [r.number for r in candidates],
                "second_partition_seed": second_seed,
                "complete": on_both,
                "chosen_on": "both partitions" if on_both else "the search's scores",
            },
            "best": None if best is None else _record_dict(best),
            "trials": [_record_dict(r) for r in records],
        },
    )
    if best_cfg is None:
        return
    starting = _starting_record(records)
    header = [
        "# Written by qa-assistant tune: the starting config with the best trial's values.",
        f"# Objective: mean {metric} over {folds} folds of the training data (the test split was not used).",
        *_choice_lines(best, starting, candidates, on_both, (confirm, requested), second_seed),
        f"# Searched: {', '.join(f'{k}={spec}' for k, spec in identity['space'].items())}",
        f"# Values: {shown_values(best.values)}",
    ]
    body = yaml.safe_dump(best_cfg.to_dict(), sort_keys=False)
    write_text(root / BEST_YAML, "\n".join(header) + "\n" + body)


def _choice_lines(
    best: TrialRecord,
    starting: TrialRecord | None,
    candidates: Sequence[TrialRecord],
    on_both: bool,
    confirm: tuple[int, int],
    second_seed: int,
) -> list[str]:
    """How best.yaml's trial was chosen, beside the starting config's scores."""
    scored, requested = confirm

    def scores(record: TrialRecord) -> str:
        search = _spread(record.scores)
        if not on_both:
            return search
        return f"{record.both:.4f} over both partitions (search {search}, second {_spread(record.second)})"

    finished = starting is not None and starting.state == "complete"
    lines = [
        f"# Best: trial {best.number}, {scores(best)}; "
        + (
            f"starting config (trial {starting.number}): {scores(starting)}."
            if finished
            else "the starting config's trial did not finish."
        )
    ]
    if on_both:
        fewer = f" ({scored} of --confirm {requested}: more would take over a third of the budget)"
        lines.append(
            f"# Chosen among trials {', '.join(str(r.number) for r in candidates)} (the search's best "
            f"and the starting config), each scored again on a second partition (train.seed {second_seed})"
            + (fewer if scored < requested else "")
            + "."
        )
    elif scored > 0 and candidates:
        lines.append(
            "# Chosen on the search's scores alone: the second partition did not finish "
            "(rerun the same command to finish it)."
        )
    elif requested > 0 and scored == 0 and len(candidates) == 0:
        which = "the search's best trials" if best is starting else "the best trial and the starting config"
        lines.append(
            f"# Chosen on the search's scores alone: scoring {which} again would take over a third "
            "of the budget (a larger --budget checks them)."
        )
    return lines


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
        "second_partition": record.second,
        "both": None if math.isnan(record.both) else record.both,
    }


def shown_values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
