"""What `qa-assistant tune` writes: the file names, one HParams session per trial, the trials table,
`tune.json` and `best.yaml`."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def study_records(study: Any, metric: str) -> list[TrialRecord]:
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


def best_record(records: Sequence[TrialRecord], lower: bool) -> TrialRecord | None:
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


def write_outputs(
    root: Path,
    identity: dict[str, Any],
    records: list[TrialRecord],
    best: TrialRecord | None,
    best_cfg: Config | None,
    lower: bool,
    stopped_by: str,
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
        f"# Searched: {', '.join(f'{k}={spec}' for k, spec in identity['space'].items())}",
        f"# Values: {shown_values(best.values)}",
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


def shown_values(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in values.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
