"""K-fold runs, a sweep and a paired comparison on tiny generated data (each run a few seconds)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.analysis.compare import align, compare_runs, compare_with_tfidf, per_question_scores
from qa_assistant.analysis.kfold import SUMMARY_JSON, SUMMARY_TABLE, run_folds
from qa_assistant.analysis.statistics import corrected_paired_ttest
from qa_assistant.analysis.sweep import (
    RESULTS_CSV,
    RESULTS_TABLE,
    PointResult,
    check_comparable,
    grid_points,
    load_grid,
    parse_grid,
    point_name,
    run_sweep,
    select_point,
    selection_report,
)
from qa_assistant.cli import main
from qa_assistant.errors import UserError
from tests.helpers import TINY, faq_rows, tiny_config

FAST = [*TINY, "train.epochs=1", "train.jit_compile=false", "tensorboard.confusion_classes=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("experiments") / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def sweep(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two points that differ in the encoder, trained on the same split."""
    base = tmp_path_factory.mktemp("sweep") / "base.yaml"
    base.write_text(f"data: {{train: {json.dumps(str(data))}}}\n")
    root = base.parent / "root"
    run_sweep([base], parse_grid(["encoder.type=gru,lstm"]), root, overrides=FAST)
    return root


def test_folds_are_runs_under_a_parent_with_mean_std_and_interval(data: Path, tmp_path: Path) -> None:
    result = run_folds(tiny_config(*FAST[len(TINY) :], train=data), tmp_path / "cv", folds=2, repeats=1)
    assert [p.relative_to(tmp_path / "cv").as_posix() for p in result.run_dirs] == [
        "seed-42/fold-0",
        "seed-42/fold-1",
    ]
    tested = [pd.read_json(run / "data" / "test.jsonl", lines=True)["question"] for run in result.run_dirs]
    assert not set(tested[0]) & set(tested[1])
    assert len(tested[0]) + len(tested[1]) == len(faq_rows())  # every question tested once
    summary = json.loads((tmp_path / "cv" / SUMMARY_JSON).read_text())
    accuracy = summary["metrics"]["accuracy"]
    values = [m["accuracy"] for m in result.metrics]
    assert accuracy["mean"] == pytest.approx(sum(values) / 2)
    assert accuracy["n"] == 2
    assert accuracy["ci_low"] <= accuracy["mean"] <= accuracy["ci_high"]
    assert "baseline_accuracy" in summary["metrics"]
    assert "| accuracy |" in (tmp_path / "cv" / SUMMARY_TABLE).read_text()
    again = run_folds(tiny_config(*FAST[len(TINY) :], train=data), tmp_path / "cv", folds=2)
    assert again.metrics == result.metrics  # finished folds are not retrained


def test_sweep_writes_one_run_per_point_under_one_tensorboard_root(sweep: Path) -> None:
    names = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert names == ["encoder.type=gru", "encoder.type=lstm"]
    with (sweep / RESULTS_CSV).open() as f:
        rows = list(csv.DictReader(f))
    assert [row["encoder.type"] for row in rows] == ["gru", "lstm"]
    for row, name in zip(rows, names, strict=True):
        metrics = json.loads((sweep / name / "metrics.json").read_text())
        assert float(row["accuracy"]) == pytest.approx(metrics["accuracy"])
        assert row["accuracy_ci_low"] == ""  # one run: no interval
    table = (sweep / RESULTS_TABLE).read_text()
    assert table.startswith(
        "| encoder.type | accuracy | f1_macro | recall_at_5 | mrr | TF-IDF accuracy | runs |"
    )
    sessions = [
        name
        for name in names
        for path in (sweep / name / "logs").glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == "_hparams_/session_start_info"
    ]
    assert sorted(sessions) == names


def test_paired_bootstrap_compares_two_runs_on_the_same_questions(sweep: Path) -> None:
    gru, lstm = sweep / "encoder.type=gru", sweep / "encoder.type=lstm"
    results = compare_runs(gru, lstm, samples=500)
    accuracy = results["accuracy"]
    assert accuracy.mean_a == pytest.approx(json.loads((gru / "metrics.json").read_text())["accuracy"])
    assert accuracy.mean_b == pytest.approx(json.loads((lstm / "metrics.json").read_text())["accuracy"])
    assert results["mrr"].mean_b == pytest.approx(json.loads((lstm / "metrics.json").read_text())["mrr"])
    assert 0 < accuracy.p_value <= 1
    assert (
        accuracy.n == json.loads((gru / "metrics.json").read_text())["num_questions"]
    )  # questions, not rows


def test_a_run_is_compared_with_its_own_tfidf_baseline_on_the_same_questions(sweep: Path) -> None:
    gru = sweep / "encoder.type=gru"
    metrics = json.loads((gru / "metrics.json").read_text())
    results = compare_with_tfidf(gru, samples=500)
    # A is the baseline the run reported, refitted from the run directory alone.
    assert results["accuracy"].mean_a == pytest.approx(metrics["baseline_accuracy"])
    assert results["mrr"].mean_a == pytest.approx(metrics["baseline_mrr"])
    assert results["accuracy"].mean_b == pytest.approx(metrics["accuracy"])
    assert results["accuracy"].n == metrics["num_questions"]


def test_per_question_scores_and_alignment_refuse_other_questions() -> None:
    a = pd.DataFrame(
        {
            "question": ["q1", "q2", "q2"],
            "reference": ["x", "y", "z"],
            "correct": [True, False, True],
            "rank": [1.0, None, 3.0],
        }
    )
    scores = per_question_scores(a)
    assert scores["accuracy"].tolist() == [1.0, 0.0, 1.0]
    assert scores["mrr"].tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    assert scores["recall_at_1"].tolist() == [1.0, 0.0, 0.0]
    assert scores["mrr_at_10"].tolist() == pytest.approx([1.0, 0.0, 1 / 3])
    shuffled = a.iloc[[2, 0, 1]]
    _, right = align(a, shuffled)
    assert right["reference"].tolist() == ["x", "y", "z"]
    with pytest.raises(UserError, match="tested on different questions"):
        align(a, a.iloc[:2])


def test_runs_credited_with_different_answers_of_one_question_still_align() -> None:
    # "tell me a joke" has answers j1 and j2: A ranked j2 first (credited j2), B was wrong
    # (its reference is the first one, j1). The question is the same.
    a = pd.DataFrame({"question": ["tell me a joke"], "references": [["j1", "j2"]], "reference": ["j2"]})
    b = pd.DataFrame({"question": ["tell me a joke"], "references": [["j1", "j2"]], "reference": ["j1"]})
    left, right = align(a, b)
    assert (left["reference"].tolist(), right["reference"].tolist()) == (["j2"], ["j1"])


def test_the_comparison_resamples_distinct_questions(tmp_path: Path) -> None:
    runs = []
    for name, correct in (("a", [True, False, True]), ("b", [True, True, True])):
        run = tmp_path / name
        run.mkdir()
        pd.DataFrame(
            {
                "question": ["tell me a joke", "hi", "bye"],
                "references": [["pun", "knock knock"], ["hello"], ["see you"]],
                "correct": correct,
                "rank": [1.0, 1.0 if correct[1] else 12.0, 1.0],
            }
        ).to_json(run / "predictions.jsonl", orient="records", lines=True)
        runs.append(run)
    results = compare_runs(*runs, samples=200)
    assert results["accuracy"].n == 3
    assert results["mrr"].delta == pytest.approx((1 - 1 / 12) / 3)
    assert results["mrr_at_10"].delta == pytest.approx(1 / 3)
    # A file with a row per (question, answer) pair: still 3 questions, resampled whole.
    for run in runs:
        rows = pd.read_json(run / "predictions.jsonl", lines=True)
        rows = pd.concat([rows, rows.iloc[[0, 0]]]).rename(columns={"references": "reference"})
        rows["reference"] = rows["reference"].astype(str)
        rows.to_json(run / "predictions.jsonl", orient="records", lines=True)
    assert compare_runs(*runs, samples=200)["accuracy"].n == 3


def test_grid_from_the_command_line_and_from_yaml(tmp_path: Path) -> None:
    grid = parse_grid(["encoder.type=gru,lstm", "encoder.layers=1,2"])
    assert grid_points(grid)[1] == {"encoder.type": "gru", "encoder.layers": 2}
    assert len(grid_points(grid)) == 4
    path = tmp_path / "grid.yaml"
    path.write_text("encoder.type: [gru, transformer]\ntrain.learning_rate: 0.01\n")
    assert load_grid(path) == {"encoder.type": ["gru", "transformer"], "train.learning_rate": [0.01]}
    with pytest.raises(UserError, match="not of the form"):
        parse_grid(["encoder.type"])


def test_a_bad_point_fails_before_anything_trains(data: Path, tmp_path: Path) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(f"data: {{train: {json.dumps(str(data))}}}\n")
    with pytest.raises(
        UserError, match=re.escape("sweep point encoder.type=gur: config key 'encoder.type' got 'gur'")
    ):
        run_sweep([base], parse_grid(["encoder.type=gru,gur"]), tmp_path / "root", overrides=FAST)
    assert not (tmp_path / "root").exists()


def test_folds_cannot_export_one_model(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(
        ["train", "--train-data", str(data), "--folds", "2", "--name", "faq", "--output", str(tmp_path / "x")]
    )
    assert code == 2
    assert "--name exports one model, but --folds trains one per fold" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _point(values: dict, validation: list[float], test: list[float], baseline: list[float]) -> PointResult:
    runs = [
        {"best_val_accuracy": v, "accuracy": t, "baseline_accuracy": b, "num_test": 50, "num_train": 100}
        for v, t, b in zip(validation, test, baseline, strict=True)
    ]
    config = tiny_config("train.monitor=val_accuracy")
    return PointResult(values, Path(point_name(values)), config, runs=runs)


def test_the_sweep_chooses_by_validation_and_holm_adjusts_its_paired_tests(tmp_path: Path) -> None:
    base = [0.30, 0.32, 0.31]
    points = [
        _point({"encoder.units": 64}, [0.50, 0.52, 0.51], [0.70, 0.72, 0.71], base),  # best on test
        _point({"encoder.units": 128}, [0.60, 0.61, 0.62], [0.60, 0.65, 0.61], base),  # best on validation
        _point({"encoder.units": 256}, [0.40, 0.41, 0.40], [0.40, 0.50, 0.45], base),
    ]
    selection = select_point(points)
    assert selection.chosen is points[1]  # the test split takes no part in the choice
    assert (selection.criterion, selection.metric) == ("best_val_accuracy", "accuracy")
    by_name = {c.other: c for c in selection.comparisons}
    assert set(by_name) == {"encoder.units=64", "encoder.units=256", "TF-IDF baseline"}
    assert by_name["encoder.units=64"].delta == pytest.approx(-0.09)
    raw = corrected_paired_ttest([0.40, 0.50, 0.45], [0.60, 0.65, 0.61], test_train_ratio=0.5)
    assert by_name["encoder.units=256"].p_value == pytest.approx(raw.p_value)
    assert all(c.p_holm >= c.p_value for c in selection.comparisons)
    assert max(c.p_holm for c in selection.comparisons) <= 1.0
    report = selection_report(selection)
    assert "Chosen by validation: **encoder.units=128**" in report
    assert "p adjusted by Holm over 3 comparisons" in report


def test_no_choice_without_one_validation_monitor() -> None:
    a, b = (_point({"encoder.units": n}, [0.5], [0.7], [0.3]) for n in (64, 128))
    b.config = tiny_config("train.monitor=val_loss")
    assert select_point([a, b]) is None  # two monitors: nothing comparable to choose by
    a.runs[0].pop("best_val_accuracy")  # no validation split: the run watched the training loss
    assert select_point([a]) is None
    assert selection_report(None).startswith("No point chosen")


def test_a_diverged_point_is_never_chosen() -> None:
    base = [0.3, 0.3]
    diverged = _point({"train.learning_rate": 1.0}, [float("nan"), float("nan")], [0.1, 0.1], base)
    points = [diverged, _point({"train.learning_rate": 0.001}, [0.6, 0.6], [0.6, 0.6], base)]
    assert select_point(points).chosen is points[1]
    assert select_point([diverged]) is None


@pytest.mark.parametrize(
    ("settings", "grid", "expected"),
    [
        ([], "task.label_smoothing=0,0.1", "task.label_smoothing, which changes what train.monitor val_loss"),
        (["task.type=retrieve"], "task.temperature=0.02,0.1", "expected train.monitor=val_mrr"),
        (["task.type=retrieve"], "train.batch_size=16,64", "train.batch_size"),
        (
            ["task.type=retrieve", "train.monitor=val_accuracy"],
            "train.batch_size=16,64",
            "val_in_batch_accuracy",
        ),
        (
            ["train.monitor=val_accuracy"],
            "data.validation_fraction=0.1,0.2",
            "changes the validation questions",
        ),
        (["task.type=generate"], "text.tokenizer=word,wordpiece", "text.tokenizer, which changes what"),
        (
            ["task.type=retrieve", "train.monitor=val_mrr", "init.source=runs/base"],
            "task.weight_averaging=1,0.5",
            "task.weight_averaging, which is applied to the finished model after the per-epoch validation",
        ),
    ],
)
def test_a_grid_whose_monitor_measures_different_things_per_point_is_refused(
    data: Path, tmp_path: Path, settings: list[str], grid: str, expected: str
) -> None:
    base = tmp_path / "base.yaml"
    base.write_text(f"data: {{train: {json.dumps(str(data))}}}\n")
    with pytest.raises(UserError, match=re.escape(expected)):
        run_sweep([base], parse_grid([grid]), tmp_path / "root", overrides=[*FAST, *settings])
    assert not (tmp_path / "root").exists()


def test_a_grid_chosen_by_a_comparable_monitor_is_accepted() -> None:
    config = tiny_config("task.type=retrieve", "train.monitor=val_mrr")
    check_comparable(config, parse_grid(["task.temperature=0.02,0.1", "train.batch_size=16,64"]))
    check_comparable(tiny_config(), parse_grid(["encoder.units=8,16", "task.label_smoothing=0.1"]))
    check_comparable(tiny_config(), parse_grid(["train.batch_size=16,64"]))  # no in-batch negatives here


def test_one_run_per_point_is_chosen_by_validation_without_a_test(sweep: Path) -> None:
    table = (sweep / RESULTS_TABLE).read_text()
    assert "Chosen by validation: **encoder.type=" in table
    assert "One run per point: no significance test" in table
    chosen = json.loads((sweep / "selection.json").read_text())
    scores = {
        name: json.loads((sweep / name / "metrics.json").read_text())["best_val_loss"]
        for name in ("encoder.type=gru", "encoder.type=lstm")
    }
    assert chosen["criterion"] == "best_val_loss"
    assert chosen["chosen"] == min(scores, key=scores.get)
    assert chosen["comparisons"] == []
