"""The tables and the chart an experiment script writes from k-fold summaries."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from qa_assistant.analysis.report import bar_chart, paired_tests_table, results_csv, systems_table
from qa_assistant.analysis.statistics import corrected_paired_ttest, fold_summary, holm

RESULTS = {
    "classification": {
        "GRU": {"accuracy": fold_summary([0.5, 0.7, 0.6]), "epochs_run": fold_summary([4, 6, 5])},
        "TF-IDF": {"accuracy": fold_summary([0.8])},
    },
    "retrieval": {"GRU": {"mrr": fold_summary([0.2, 0.3])}},
}


def test_systems_table_shows_mean_std_the_interval_and_epochs() -> None:
    table = systems_table(RESULTS["classification"], ["accuracy", "f1_macro"])
    gru = RESULTS["classification"]["GRU"]["accuracy"]
    assert table.splitlines() == [
        "| system | accuracy | f1_macro | accuracy 95 % CI | epochs |",
        "|---|---:|---:|---:|---:|",
        f"| GRU | 0.600 ± 0.100 |  | [{gru.ci_low:.3f}, {gru.ci_high:.3f}] | 5.0 |",
        "| TF-IDF | 0.800 ± 0.000 |  |  |  |",  # one run: no interval
    ]
    systems = {"GRU": {**RESULTS["classification"]["GRU"], "best_val_accuracy": fold_summary([0.4, 0.6])}}
    chosen_by = systems_table(systems, ["accuracy"], validation="best_val_accuracy").splitlines()
    assert chosen_by[0] == "| system | validation accuracy | accuracy | accuracy 95 % CI | epochs |"
    assert chosen_by[2].startswith("| GRU | 0.500 ± 0.141 | 0.600 ± 0.100 |")


def test_paired_tests_table_tests_each_row_and_adjusts_over_the_rows() -> None:
    a = [0.50, 0.52, 0.55, 0.51]
    pairs = {
        "big": (a, [0.60, 0.61, 0.66, 0.63]),
        "none": (a, list(a)),
        "small": (a, [0.51, 0.52, 0.57, 0.51]),
    }
    lines = paired_tests_table(pairs, 0.25, row="comparison", difference="B − A (mrr)").splitlines()
    assert lines[:2] == [
        "| comparison | B − A (mrr) | 95 % CI | needed for p < 0.05 | t | p | p (Holm) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    tests = [corrected_paired_ttest(x, y, 0.25) for x, y in pairs.values()]
    adjusted = holm([t.p_value for t in tests])
    for line, label, t, p_holm in zip(lines[2:], pairs, tests, adjusted, strict=True):
        interval = f"[{t.ci_low:+.3f}, {t.ci_high:+.3f}] | ±{t.detectable:.3f}"
        assert (
            line == f"| {label} | {t.delta:+.3f} | {interval} | {t.t:.2f} | {t.p_value:.3f} | {p_holm:.3f} |"
        )
    assert lines[2].startswith("| big | +0.105 |")
    assert lines[3] == "| none | +0.000 | [+0.000, +0.000] | ±0.000 | 0.00 | 1.000 | 1.000 |"
    assert adjusted[0] > tests[0].p_value  # three tests: the smallest p is multiplied by 3


def test_results_csv_has_one_row_per_group_system_and_metric() -> None:
    rows = list(csv.DictReader(io.StringIO(results_csv(RESULTS))))
    assert [(r["group"], r["system"], r["metric"]) for r in rows] == [
        ("classification", "GRU", "accuracy"),
        ("classification", "GRU", "epochs_run"),
        ("classification", "TF-IDF", "accuracy"),
        ("retrieval", "GRU", "mrr"),
    ]
    assert float(rows[0]["mean"]) == pytest.approx(0.6)
    assert rows[0]["n"] == "3"
    assert rows[2]["ci_low"] == rows[2]["ci_high"] == ""


def test_bar_chart_is_a_png_with_a_panel_per_group(tmp_path: Path) -> None:
    import matplotlib.image

    path = bar_chart(RESULTS, {"classification": "accuracy", "retrieval": "mrr"}, tmp_path / "c.png", "t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(path).shape
    assert (width, height) == (1040, 420)  # two 5.2 x 4.2 inch panels at 100 dpi
