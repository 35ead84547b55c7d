"""K-fold cross-validation, repeated with seeds: ordinary runs under one parent, and their statistics.

`qa-assistant train --folds K --repeats R --output PARENT` trains one run per
(seed, fold)::

    PARENT/
      seed-42/fold-0/ ... seed-42/fold-K-1/    ordinary run directories (data.folds=K,
      seed-43/fold-0/ ...                        data.fold=i, train.seed=s), resumable
      kfold.json                                 per metric: mean, std, 95 % interval, n; the runs
      kfold.md                                   the same as a Markdown table

Seeds are `train.seed`, `train.seed + 1`, ...: each seed draws another
partition into K folds (and other initial weights). The interval is the
corrected resampled t-interval (`analysis/statistics.py`, `fold_summary`).
Rerunning the command skips finished folds and resumes an unfinished one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa_assistant.analysis.statistics import FoldSummary, fold_summary
from qa_assistant.atomic import write_text
from qa_assistant.config import Config, from_dict
from qa_assistant.errors import UserError
from qa_assistant.manifest import write_json
from qa_assistant.training.runner import train_run

log = logging.getLogger(__name__)

SUMMARY_JSON = "kfold.json"
SUMMARY_TABLE = "kfold.md"
BASELINE = "baseline_"
# metrics.json entries that are sizes, not scores
_SIZES = ("num_train", "num_validation", "num_test", "num_questions")


@dataclass
class KFoldResult:
    """What `run_folds` reports."""

    parent: Path
    run_dirs: list[Path]
    metrics: list[dict[str, float]]
    summary: dict[str, FoldSummary]


def fold_config(config: Config, folds: int, fold: int, seed: int) -> Config:
    """`config` with `data.folds`, `data.fold` and `train.seed` set (validated again)."""
    data = config.to_dict()
    data["data"].update(folds=folds, fold=fold)
    data["train"]["seed"] = seed
    return from_dict(data)


def fold_directory(parent: Path, seed: int, fold: int) -> Path:
    """Where the run of one (seed, fold) lives."""
    return Path(parent) / f"seed-{seed}" / f"fold-{fold}"


def run_folds(
    config: Config, parent: str | Path, *, folds: int, repeats: int = 1, restart: bool = False
) -> KFoldResult:
    """Trains every fold for `repeats` seeds and writes the statistics into `parent`.

    Args:
        config: the configuration shared by all folds.
        parent: the directory that holds the fold runs and the summary.
        folds: K, at least 2.
        repeats: how many seeds (partitions) to repeat the K folds with.
        restart: retrain every fold from scratch.

    Returns:
        The runs' metrics and their per-metric summary.

    Raises:
        UserError: bad K or repeats, a config that cannot be split in K folds.

    Example:

    >>> result = run_folds(load_config(["base.yaml"]), "runs/cv", folds=5, repeats=2)  # doctest: +SKIP
    >>> result.summary["accuracy"].shown()  # doctest: +SKIP
    '0.612 ± 0.031'
    """
    if folds < 2:
        raise UserError(f"--folds must be at least 2; got {folds}")
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1; got {repeats}")
    parent = Path(parent)
    seeds = [config.train.seed + r for r in range(repeats)]
    plan = [(seed, fold, fold_config(config, folds, fold, seed)) for seed in seeds for fold in range(folds)]
    run_dirs, metrics = [], []
    for index, (seed, fold, fold_cfg) in enumerate(plan, start=1):
        log.info("k-fold: seed %d, fold %d of %d (run %d of %d)", seed, fold, folds, index, len(plan))
        result = train_run(fold_cfg, fold_directory(parent, seed, fold), restart=restart)
        run_dirs.append(result.run_dir)
        metrics.append(result.metrics)
    summary = summarize(metrics)
    write_summary(parent, summary, run_dirs, folds=folds, seeds=seeds)
    return KFoldResult(parent, run_dirs, metrics, summary)


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, FoldSummary]:
    """Per numeric metric of the runs (baseline included): mean, std and corrected interval.

    The interval's test/train ratio is the runs' mean `num_test / num_train`.
    """
    ratio = test_train_ratio(runs)
    keys = [k for k, v in runs[0].items() if _is_number(v) and k not in _SIZES]
    return {
        key: fold_summary([float(run[key]) for run in runs], ratio)
        for key in keys
        if all(_is_number(run.get(key)) for run in runs)
    }


def test_train_ratio(runs: Sequence[Mapping[str, Any]]) -> float | None:
    """The runs' mean `num_test / num_train` (the corrected tests' overlap term); `None` without sizes."""
    if not all(run.get("num_train") for run in runs):
        return None
    return float(np.mean([run.get("num_test", 0) / run["num_train"] for run in runs]))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def write_summary(
    parent: Path,
    summary: Mapping[str, FoldSummary],
    run_dirs: Sequence[Path],
    *,
    folds: int,
    seeds: list[int],
) -> None:
    """`kfold.json` and `kfold.md` in `parent`."""
    write_json(
        parent / SUMMARY_JSON,
        {
            "folds": folds,
            "seeds": seeds,
            "interval": "95 % corrected resampled t-interval (Nadeau & Bengio 2003) over folds x seeds",
            "metrics": {key: value.as_dict() for key, value in summary.items()},
            "runs": [str(Path(run).relative_to(parent)) for run in run_dirs],
        },
    )
    write_text(parent / SUMMARY_TABLE, summary_table(summary) + "\n")


def summary_table(summary: Mapping[str, FoldSummary]) -> str:
    """A Markdown table: one row per metric, the model and its baseline side by side."""
    lines = [
        "| metric | model (mean ± std) | model 95 % CI | baseline (mean ± std) | baseline 95 % CI |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, value in summary.items():
        if key.startswith(BASELINE):
            continue
        base = summary.get(BASELINE + key)
        cells = [value.shown(), value.shown_interval()]
        cells += [base.shown(), base.shown_interval()] if base else ["", ""]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    n = next(iter(summary.values())).n if summary else 0
    lines.append(f"\n{n} runs; 95 % CI: corrected resampled t-interval over folds × seeds.")
    return "\n".join(lines)
