"""Tables and charts of k-fold summaries: what an experiment script prints and saves."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from qa_assistant.analysis.statistics import FoldSummary, corrected_paired_ttest, fold_summary, holm

# A table of systems (rows) per group (e.g. a task): group -> system -> metric -> summary.
Results = Mapping[str, Mapping[str, Mapping[str, FoldSummary]]]


def mean_std_cells(
    runs: Sequence[Mapping[str, float | str]], keys: Sequence[str], prefix: str = ""
) -> dict[str, str]:
    """Table cells `mean ± std` (sample std; 0 for one run) of `prefix + key` over runs.

    A key that no run has is left out; a key whose values are text (`none`)
    shows the first run's text.

    Example:

    >>> mean_std_cells([{"accuracy": 0.5}, {"accuracy": 0.7}], ["accuracy", "mrr"])
    {'accuracy': '0.600 ± 0.141'}
    """
    cells = {}
    for key in keys:
        values = [run[prefix + key] for run in runs if prefix + key in run]
        if not values:
            continue
        if any(isinstance(v, str) for v in values):
            cells[key] = str(values[0])
            continue
        cells[key] = fold_summary(values).shown(digits=0 if key.endswith("seconds") else 3)
    return cells


def systems_table(
    systems: Mapping[str, Mapping[str, FoldSummary]], metrics: Sequence[str], validation: str | None = None
) -> str:
    """Markdown: one row per system, `mean ± std` per metric, the first metric's 95 % CI, mean epochs.

    `validation` (e.g. `best_val_accuracy`) adds a first column with that
    validation score, mean ± std: what a system is chosen by, since the
    test folds must take no part in the choice.

    Example:

    >>> from qa_assistant.analysis.statistics import fold_summary
    >>> print(systems_table({"gru": {"accuracy": fold_summary([0.5, 0.7])}}, ["accuracy"]))
    | system | accuracy | accuracy 95 % CI | epochs |
    |---|---:|---:|---:|
    | gru | 0.600 ± 0.141 | [-0.671, 1.871] |  |
    """
    first = metrics[0]
    chosen_by = [validation] if validation else []
    lines = [
        "| system | "
        + " | ".join([*(f"validation {v[len('best_val_') :]}" for v in chosen_by), *metrics])
        + f" | {first} 95 % CI | epochs |",
        "|---|" + "---:|" * (len(chosen_by) + len(metrics) + 2),
    ]
    for name, summary in systems.items():
        cells = [summary[m].shown() if m in summary else "" for m in [*chosen_by, *metrics]]
        cells.append(summary[first].shown_interval() if first in summary else "")
        epochs = summary.get("epochs_run")
        cells.append(f"{epochs.mean:.1f}" if epochs else "")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_tests_table(
    pairs: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    test_train_ratio: float | None,
    *,
    row: str = "system",
    difference: str = "B − A",
) -> str:
    """Markdown: B − A per row over the same runs, the corrected paired t-test, Holm over the rows.

    `pairs` maps a row label to `(A's scores, B's scores)`, one score per run in
    the same run order (same splits or folds); `statistics.corrected_paired_ttest`
    tests each, and `statistics.holm` adjusts the p-values for the number of rows.
    The 95 % interval of each difference is shown, and its half-width as the
    smallest difference these runs could have called significant (p < 0.05
    before Holm): a non-significant row with a wide one says "not measurable
    here", not "no difference".

    Example:

    >>> print(paired_tests_table({"gru": ([0.5, 0.52, 0.55], [0.6, 0.61, 0.66])}, 0.5, difference="gru − tfidf"))
    | system | gru − tfidf | 95 % CI | needed for p < 0.05 | t | p | p (Holm) |
    |---|---:|---:|---:|---:|---:|---:|
    | gru | +0.100 | [+0.061, +0.139] | ±0.039 | 10.95 | 0.008 | 0.008 |
    """
    tests = {label: corrected_paired_ttest(a, b, test_train_ratio) for label, (a, b) in pairs.items()}
    adjusted = holm([t.p_value for t in tests.values()])
    lines = [
        f"| {row} | {difference} | 95 % CI | needed for p < 0.05 | t | p | p (Holm) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for (label, t), p_holm in zip(tests.items(), adjusted, strict=True):
        lines.append(
            f"| {label} | {t.delta:+.3f} | [{t.ci_low:+.3f}, {t.ci_high:+.3f}] | ±{t.detectable:.3f} "
            f"| {t.t:.2f} | {t.p_value:.3f} | {p_holm:.3f} |"
        )
    return "\n".join(lines)


def results_csv(results: Results) -> str:
    """Long format: group, system, metric, mean, std, ci_low, ci_high, n."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["group", "system", "metric", "mean", "std", "ci_low", "ci_high", "n"])
    for group, systems in results.items():
        for system, summary in systems.items():
            for metric, s in summary.items():
                bounds = ["" if math.isnan(v) else v for v in (s.ci_low, s.ci_high)]
                writer.writerow([group, system, metric, s.mean, s.std, *bounds, s.n])
    return out.getvalue()


def bar_chart(results: Results, metrics: Mapping[str, str], path: str | Path, title: str) -> Path:
    """A PNG with one panel per group: a bar per system, error bars = the 95 % interval.

    Args:
        results: group -> system -> metric -> summary.
        metrics: group -> the metric its panel shows.
        path: where to write the PNG.
        title: the figure's title.

    Returns:
        `path`.
    """
    import matplotlib  # deferred: start-up time

    matplotlib.use("Agg")  # no display; must precede pyplot
    import matplotlib.pyplot as plt  # deferred: start-up time

    groups = list(results)
    figure, axes = plt.subplots(1, len(groups), figsize=(5.2 * len(groups), 4.2), dpi=100, squeeze=False)
    for axis, group in zip(axes[0], groups, strict=True):
        metric = metrics[group]
        names = [name for name, summary in results[group].items() if metric in summary]
        summaries = [results[group][name][metric] for name in names]
        means = [s.mean for s in summaries]
        low = [0.0 if math.isnan(s.ci_low) else s.mean - max(s.ci_low, 0.0) for s in summaries]
        high = [0.0 if math.isnan(s.ci_high) else min(s.ci_high, 1.0) - s.mean for s in summaries]
        axis.bar(range(len(names)), means, yerr=[low, high], capsize=4, color="#4878a8")
        # The mean goes under the name: on or above the bar it collides with the error bar.
        ticks = [
            "\n".join([*name.split(" "), f"{mean:.2f}"]) for name, mean in zip(names, means, strict=True)
        ]
        axis.set_xticks(range(len(names)), ticks, fontsize=8)
        axis.set_ylim(0, 1)
        axis.set_ylabel(metric)
        axis.set_title(group, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
