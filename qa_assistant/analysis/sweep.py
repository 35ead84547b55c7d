"""Hyper-parameter sweeps: every point of a grid is a run (or a k-fold parent) under one root.

    ROOT/
      encoder.type=gru,encoder.layers=1/    a run directory (or, with folds, a k-fold parent)
      encoder.type=lstm,encoder.layers=1/
      ...
      results.csv                           one row per point: its values, every metric
                                            (mean, std, 95 % CI bounds with folds)
      results.md                            the headline metrics as a Markdown table, then the
                                            point chosen by validation and its paired tests
      selection.json                        the same choice and tests, for scripts

ROOT is one TensorBoard log directory: each run is an HParams session, so the
dashboard lists the points side by side (`qa-assistant tensorboard ROOT`).
Every point's config is checked before the first one trains.

**Choosing a point.** The point with the best mean validation score (the
best epoch's value of the points' `train.monitor`, `best_val_*` in
metrics.json) is chosen: the test split never takes part in the choice.
With --folds, the chosen point's test headline metric is then compared with
every other point's, and with the TF-IDF baseline, on the same folds
(corrected resampled paired t-test, `statistics.corrected_paired_ttest`), and
the p-values are Holm-adjusted for the number of comparisons.
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

import numpy as np
import yaml

from qa_assistant.analysis.kfold import BASELINE, run_folds, summarize, test_train_ratio
from qa_assistant.analysis.statistics import FoldSummary, corrected_paired_ttest, holm
from qa_assistant.atomic import write_text
from qa_assistant.config import Config, check_trains, load_config
from qa_assistant.errors import UserError
from qa_assistant.manifest import write_json
from qa_assistant.tasks import get_task
from qa_assistant.training.callbacks import lower_is_better
from qa_assistant.training.runner import train_run

log = logging.getLogger(__name__)

RESULTS_CSV = "results.csv"
RESULTS_TABLE = "results.md"
SELECTION_JSON = "selection.json"


@dataclass
class PointResult:
    """One grid point: its settings, where it ran, and its metrics' summary."""

    values: dict[str, Any]
    directory: Path
    config: Config
    summary: dict[str, FoldSummary] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)  # each run's metrics.json, in fold order

    def scores(self, metric: str) -> list[float]:
        return [float(run[metric]) for run in self.runs]


@dataclass(frozen=True)
class Comparison:
    """The chosen point's test metric minus another point's (or the baseline's), over the same runs."""

    other: str
    delta: float
    p_value: float
    p_holm: float


@dataclass
class Selection:
    """The point with the best mean validation score, and its paired tests against the others."""

    chosen: PointResult
    criterion: str
    lower_is_better: bool
    metric: str
    comparisons: list[Comparison]


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
    root = Path(root)
    points = [
        PointResult(values, root / point_name(values), _point_config(config_files, overrides, values))
        for values in grid_points(grid)
    ]
    check_comparable(points[0].config, grid)
    for index, point in enumerate(points, start=1):
        log.info("sweep point %d of %d: %s", index, len(points), point_name(point.values))
        if folds:
            point.runs = run_folds(
                point.config, point.directory, folds=folds, repeats=repeats, restart=restart
            ).metrics
        else:
            point.runs = [train_run(point.config, point.directory, restart=restart).metrics]
        point.summary = summarize(point.runs)
    write_results(root, points)
    return points


def _point_config(
    config_files: Sequence[str | Path], overrides: Sequence[str], values: Mapping[str, Any]
) -> Config:
    settings = [f"{key}={json.dumps(value)}" for key, value in values.items()]
    try:  # every value is checked here, encoder and task types included: before anything trains
        config = load_config(list(config_files), [*overrides, *settings])
        check_trains(config)
        return config
    except UserError as error:
        raise UserError(f"sweep point {point_name(values)}: {error}") from None


# Keys whose values change what a validation value measures, per task: points that differ in
# them cannot be ranked by it. Every task: the validation split itself.
_SAME_QUESTIONS = ("data.", "train.seed")
_IN_BATCH = (
    "train.batch_size",
    "train.batch_size_scope",
    "train.strategy",
    "task.hard_negatives",
    "task.hard_negative_ceiling",
)  # how many answers a question is scored against
_TOKENS = (
    "text.tokenizer",
    "text.max_tokens",
    "text.min_count",
    "text.max_length",
    "text.answer_max_length",
    "decoder.max_length",
    "lm.preset",
    "lm.max_length",
    "lm.grounding",
    "lm.grounding_k",
    "lm.grounding_max_tokens",
    "lm.grounded_training",
    "lm.system_prompt",
)  # what a token loss averages over
_INCOMPARABLE = {
    ("classify", "val_loss"): ("task.label_smoothing",),
    ("retrieve", "val_loss"): ("task.loss", "task.temperature", "task.learn_temperature", *_IN_BATCH),
    ("generate", "val_loss"): _TOKENS,
    ("lm", "val_loss"): _TOKENS,
}
# Keys that act on the finished model, after the per-epoch validation that ranks the points:
# points that differ only in them have the same validation history.
_AFTER_VALIDATION = ("task.weight_averaging",)
# The validation metric to choose by instead, per task type.
_COMPARABLE_MONITOR = {"retrieve": "val_mrr", "classify": "val_accuracy", "generate": "val_rouge_l"}


def check_comparable(config: Config, grid: Mapping[str, Sequence[Any]]) -> None:
    """Refuses a grid whose points' validation `train.monitor` values measure different things.

    A validation loss at temperature 0.02 is not comparable with one at 0.1, nor
    one with label smoothing with one without; a retrieval model's loss and
    in-batch accuracy also depend on how many answers share a batch, a token
    loss on the tokens it averages over, and every value on which questions
    the validation split holds. Keys applied after training
    (`task.weight_averaging`) leave the validation history unchanged.

    Raises:
        UserError: naming the varied keys (and a monitor that compares them, where one does).
    """
    monitor, task = config.train.monitor, config.task.type
    varied = [key for key, values in grid.items() if len(values) > 1]
    split = [k for k in varied if k.startswith(_SAME_QUESTIONS)]
    if split:
        raise UserError(
            f"the grid varies {', '.join(split)}, which changes the validation questions, so the points "
            "could not be chosen between; expected a grid of model and training keys"
        )
    after = [k for k in varied if k in _AFTER_VALIDATION]
    if after:
        raise UserError(
            f"the grid varies {', '.join(after)}, which is applied to the finished model after the "
            "per-epoch validation that ranks the points, so it could not be chosen by it; expected "
            "qa-assistant tune, which scores each finished model (e.g. --space task.weight_averaging=1,0.75,0.5)"
        )
    clashing = [k for k in varied if k in _INCOMPARABLE.get((task, monitor), ())]
    if clashing:
        instead = _COMPARABLE_MONITOR.get(task)
        hint = f"; expected train.monitor={instead} (--set train.monitor={instead})" if instead else ""
        raise UserError(
            f"the grid varies {', '.join(clashing)}, which changes what train.monitor {monitor} "
            f"measures, so the points could not be chosen between{hint}"
        )


def headline_metrics(config: Config) -> tuple[str, ...]:
    """The metrics a table shows for the config's task (`Task.headline_metrics`)."""
    return get_task(config).headline_metrics


def write_results(root: Path, points: Sequence[PointResult]) -> None:
    """`results.csv`, `results.md` (headline metrics, the choice) and `selection.json` in `root`."""
    write_text(root / RESULTS_CSV, results_csv(points))
    selection = select_point(points)
    write_text(root / RESULTS_TABLE, results_table(points) + "\n\n" + selection_report(selection) + "\n")
    if selection is not None:
        write_json(root / SELECTION_JSON, selection_dict(selection))


def select_point(points: Sequence[PointResult]) -> Selection | None:
    """The point with the best mean validation score; with several runs each, its paired tests.

    `None` when the points watch different `train.monitor`s or a monitor
    that is not a validation metric (no validation split): nothing to choose by.
    """
    monitors = {point.config.train.monitor for point in points}
    if len(monitors) != 1 or not next(iter(monitors)).startswith("val_"):
        return None
    criterion = "best_" + next(iter(monitors))
    if not points or any(criterion not in run for point in points for run in point.runs):
        return None
    lower = lower_is_better(criterion)
    means = [float(np.mean(point.scores(criterion))) for point in points]
    finite = [i for i, mean in enumerate(means) if math.isfinite(mean)]  # a diverged point cannot win
    if not finite:
        return None
    best = (min if lower else max)(finite, key=lambda i: means[i])  # ties: the first in grid order
    chosen = points[best]
    metric = headline_metrics(chosen.config)[0]
    return Selection(chosen, criterion, lower, metric, _comparisons(chosen, points, metric))


def _comparisons(chosen: PointResult, points: Sequence[PointResult], metric: str) -> list[Comparison]:
    """Chosen minus each other point and minus the TF-IDF baseline, Holm-adjusted together."""
    mine = chosen.scores(metric)
    if len(mine) < 2:
        return []  # one run per point: nothing to test
    others = [(point_name(p.values), p.scores(metric)) for p in points if p is not chosen]
    if all(BASELINE + metric in run for run in chosen.runs):
        others.append(("TF-IDF baseline", chosen.scores(BASELINE + metric)))
    paired = [(name, scores) for name, scores in others if len(scores) == len(mine)]
    ratio = test_train_ratio(chosen.runs)
    tests = [corrected_paired_ttest(scores, mine, ratio) for _, scores in paired]
    adjusted = holm([t.p_value for t in tests])
    return [
        Comparison(name, t.delta, t.p_value, p_adj)
        for (name, _), t, p_adj in zip(paired, tests, adjusted, strict=True)
    ]


def selection_report(selection: Selection | None) -> str:
    """Markdown: which point was chosen by validation, and its Holm-adjusted paired tests."""
    if selection is None:
        return (
            "No point chosen: the points do not share one validation `train.monitor`, "
            "or none has a finite validation score."
        )
    chosen = selection.chosen
    n = len(chosen.runs)
    lines = [
        f"Chosen by validation: **{point_name(chosen.values)}** (best mean {selection.criterion}, "
        f"{np.mean(chosen.scores(selection.criterion)):.4f} over {n} run{'s' if n > 1 else ''}; "
        f"{'lower' if selection.lower_is_better else 'higher'} is better). The test split took no part.",
    ]
    if n < 2:
        lines.append("\nOne run per point: no significance test (use --folds K).")
        return "\n".join(lines)
    lines += [
        "",
        f"Its test {selection.metric} minus each other's on the same {n} runs (corrected resampled "
        f"paired t-test; p adjusted by Holm over {len(selection.comparisons)} comparisons):",
        "",
        f"| compared with | chosen − other ({selection.metric}) | p | p (Holm) |",
        "|---|---:|---:|---:|",
    ]
    for c in selection.comparisons:
        lines.append(f"| {c.other} | {c.delta:+.3f} | {c.p_value:.3f} | {c.p_holm:.3f} |")
    return "\n".join(lines)


def selection_dict(selection: Selection) -> dict[str, Any]:
    """`selection.json`: the chosen point, its criterion and every comparison."""
    return {
        "chosen": point_name(selection.chosen.values),
        "values": selection.chosen.values,
        "criterion": selection.criterion,
        "criterion_mean": float(np.mean(selection.chosen.scores(selection.criterion))),
        "lower_is_better": selection.lower_is_better,
        "metric": selection.metric,
        "test": "corrected resampled paired t-test (Nadeau & Bengio 2003), Holm-adjusted",
        "comparisons": [
            {"other": c.other, "delta": c.delta, "p_value": c.p_value, "p_holm": c.p_holm}
            for c in selection.comparisons
        ],
    }


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
