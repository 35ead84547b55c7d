"""Hyper-parameter sweeps: every point of a grid is a run (or a k-fold parent) under one root.

    ROOT/
      encoder.type=gru,encoder.layers=1/    a run directory (or, with folds, a k-fold parent)
      encoder.type=lstm,encoder.layers=1/
      ...
      results.csv                           one row per point: its values, every metric
                                            (mean, std, 95 % CI bounds with folds)
      results.md                            the headline metrics as a Markdown table

ROOT is one TensorBoard log directory: each run is an HParams session, so the
dashboard lists the points side by side (`qa-assistant tensorboard ROOT`).
Every point's config is checked before the first one trains.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qa_assistant.atomic import write_text
from qa_assistant.config import Config, load_config
from qa_assistant.errors import UserError
from qa_assistant.experiments.kfold import BASELINE, run_folds, summarize
from qa_assistant.experiments.statistics import FoldSummary

log = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
RESULTS_TABLE = "results.md"


@dataclass
class PointResult:
    """One grid point: its settings, where it ran, and its metrics' summary."""

    values: dict[str, Any]
    directory: Path
    config: Config
    summary: dict[str, FoldSummary] = field(default_factory=dict)


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """`["encoder.type=gru,lstm", "encoder.layers=1,2"]` -> `{key: [values]}` (values parsed as YAML).

    Raises:
        UserError: an item without `=` or without values, or a key given twice.

    Example:

    >>> parse_grid(["encoder.type=gru,lstm", "encoder.units=64,128"])
    {'encoder.type': ['gru', 'lstm'], 'encoder.units': [64, 128]}
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key or not raw.strip():
            raise UserError(f"grid item '{item}' is not of the form section.key=value1,value2,...")
        if key in grid:
            raise UserError(f"grid key '{key}' is given twice; expected each key once")
        grid[key] = [yaml.safe_load(value) for value in raw.split(",")]
    return grid


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """A YAML grid file: a mapping of `section.key` to a list of values (or one value).

    Raises:
        UserError: unreadable file or not such a mapping.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"grid file '{path}' could not be read: {str(error).splitlines()[0]}") from None
    if not isinstance(data, dict) or not data:
        raise UserError(f"grid file '{path}' must map section.key to a list of values")
    return {str(k): list(v) if isinstance(v, list) else [v] for k, v in data.items()}


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_name(values: Mapping[str, Any]) -> str:
    """A directory name for a point: `key=value,key=value` (path separators replaced)."""
    parts = [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in values.items()]
    return ",".join(parts).replace("/", "_").replace("\\", "_") or "base"


def run_sweep(
    config_files: Sequence[str | Path],
    grid: Mapping[str, Sequence[Any]],
    root: str | Path,
    *,
    overrides: Sequence[str] = (),
    folds: int = 0,
    repeats: int = 1,
    restart: bool = False,
) -> list[PointResult]:
    """Trains every grid point (k-fold when `folds`) under `root`; writes `results.csv` / `results.md`.

    Args:
        config_files: base YAML files, merged left to right.
        grid: `section.key` -> values; every combination is one point.
        root: the sweep's directory and TensorBoard root.
        overrides: `section.key=value` applied to every point before its own values.
        folds: `0` for one run per point, K for k-fold cross-validation.
        repeats: seeds per point with folds.
        restart: retrain points that already finished.

    Returns:
        One result per point, in grid order.

    Raises:
        UserError: a point's config is invalid (nothing is trained then).

    Example:

    >>> run_sweep(["base.yaml"], parse_grid(["encoder.type=gru,lstm"]), "runs/sweep")  # doctest: +SKIP
    """
    from qa_assistant.training.runner import train_run

    root = Path(root)
    points = [
        PointResult(values, root / point_name(values), _point_config(config_files, overrides, values))
        for values in grid_points(grid)
    ]
    for index, point in enumerate(points, start=1):
        log.info("sweep point %d of %d: %s", index, len(points), point_name(point.values))
        if folds:
            point.summary = run_folds(
                point.config, point.directory, folds=folds, repeats=repeats, restart=restart
            ).summary
        else:
            point.summary = summarize([train_run(point.config, point.directory, restart=restart).metrics])
    write_results(root, points)
    return points


def _point_config(
    config_files: Sequence[str | Path], overrides: Sequence[str], values: Mapping[str, Any]
) -> Config:
    from qa_assistant.models.encoders import get_encoder_builder
    from qa_assistant.tasks import get_task

    settings = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    try:
        config = load_config(list(config_files), [*overrides, *settings])
        get_encoder_builder(config.encoder.type)  # catalogue names, checked before anything trains
        get_task(config)
        return config
    except UserError as error:
        raise UserError(f"sweep point {point_name(values)}: {error}") from None


def headline_metrics(config: Config) -> tuple[str, ...]:
    """The metrics a table shows for the config's task (`Task.headline_metrics`)."""
    from qa_assistant.tasks import get_task

    return get_task(config).headline_metrics


def write_results(root: Path, points: Sequence[PointResult]) -> None:
    """`results.csv` (every metric) and `results.md` (headline metrics, mean ± std) in `root`."""
    write_text(root / RESULTS_CSV, results_csv(points))
    write_text(root / RESULTS_TABLE, results_table(points) + "\n")


def results_csv(points: Sequence[PointResult]) -> str:
    """One row per point: its grid values, then per metric mean, std, ci_low, ci_high; then n."""
    keys = list(dict.fromkeys(k for p in points for k in p.values))
    metrics = list(dict.fromkeys(m for p in points for m in p.summary))
    header = (
        ["run", *keys] + [f"{m}{s}" for m in metrics for s in ("", "_std", "_ci_low", "_ci_high")] + ["n"]
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for point in points:
        row: list[Any] = [point.directory.name, *(point.values.get(k, "") for k in keys)]
        for metric in metrics:
            s = point.summary.get(metric)
            row += [_number(v) for v in (s.mean, s.std, s.ci_low, s.ci_high)] if s else ["", "", "", ""]
        row.append(next(iter(point.summary.values())).n if point.summary else 0)
        writer.writerow(row)
    return out.getvalue()


def _number(value: float) -> float | str:
    return "" if math.isnan(value) else value  # no interval from a single run


def results_table(points: Sequence[PointResult]) -> str:
    """Markdown: grid values, headline metrics (mean ± std over runs) and the baseline's first one."""
    if not points:
        return ""
    keys = list(dict.fromkeys(k for p in points for k in p.values))
    headline = list(dict.fromkeys(m for p in points for m in headline_metrics(p.config)))
    base = BASELINE + headline[0]
    lines = [
        "| " + " | ".join([*keys, *headline, f"TF-IDF {headline[0]}", "runs"]) + " |",
        "|" + "---|" * len(keys) + "---:|" * (len(headline) + 2),
    ]
    for point in points:
        cells = [str(point.values.get(k, "")) for k in keys]
        cells += [_shown(point.summary.get(m)) for m in [*headline, base]]
        cells.append(str(next(iter(point.summary.values())).n if point.summary else 0))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shown(summary: FoldSummary | None) -> str:
    if summary is None:
        return ""
    return f"{summary.mean:.3f}" if summary.n == 1 else summary.shown()
