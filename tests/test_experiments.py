"""Every experiment script that BENCHMARKS.md runs still imports against the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from qa_assistant.errors import UserError

SCRIPTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.py"))


def test_the_scripts_are_found() -> None:
    assert len(SCRIPTS) >= 10


def _load(script: Path):
    spec = importlib.util.spec_from_file_location(f"experiment_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_an_experiment_script_imports(script: Path) -> None:
    module = _load(script)  # a renamed or moved import fails here, not in a user's hands
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"


def test_retrieval_comparisons_pair_each_encoder_with_its_untrained_self() -> None:
    module = _load(next(p for p in SCRIPTS if p.stem == "compare_retrieval"))
    systems = ["TF-IDF", "MiniLM zero-shot", "MPNet zero-shot", "MiniLM fine-tuned", "MPNet fine-tuned"]
    pairs = module.comparisons({name: [float(i), float(i) + 0.1] for i, name in enumerate(systems)})
    assert set(pairs) == {
        "MiniLM zero-shot − TF-IDF",
        "MPNet zero-shot − TF-IDF",
        "MiniLM fine-tuned − TF-IDF",
        "MPNet fine-tuned − TF-IDF",
        "MiniLM fine-tuned − MiniLM zero-shot",
        "MPNet fine-tuned − MPNet zero-shot",
        "MPNet fine-tuned − MiniLM fine-tuned",
    }
    assert pairs["MPNet fine-tuned − MPNet zero-shot"] == ([2.0, 2.1], [4.0, 4.1])  # (baseline, system)
    assert set(module.comparisons({"TF-IDF": [0.2], "GRU dual encoder": [0.1]})) == {
        "GRU dual encoder − TF-IDF"
    }


def test_retrieval_splits_are_corrected_and_a_fixed_test_file_is_not() -> None:
    module = _load(next(p for p in SCRIPTS if p.stem == "compare_retrieval"))
    runs = [
        {"TF-IDF": {"recall_at_1": tf_idf}, "MiniLM zero-shot": {"recall_at_1": dense}}
        for tf_idf, dense in [(0.20, 0.55), (0.25, 0.62), (0.23, 0.57)]
    ]
    resampled, fixed = module.significance(runs, 0.25), module.significance(runs, None)
    assert "corrected resampled t-interval" in resampled
    assert "plain, one fixed test file" in fixed

    def interval(report: str) -> str:
        return next(line for line in report.splitlines() if line.startswith("| MiniLM zero-shot |"))

    assert interval(fixed) != interval(resampled)  # narrower: no correction for overlapping splits


def test_retrieval_comparisons_refuse_systems_split_into_other_test_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from qa_assistant.errors import UserError

    module = _load(next(p for p in SCRIPTS if p.stem == "compare_retrieval"))
    source = (module.CONFIGS / "retrieval_gru.yaml").read_text()
    (tmp_path / "no_validation.yaml").write_text(
        source.replace("validation_fraction: 0.1", "validation_fraction: 0.0")
    )
    (tmp_path / "other_test.yaml").write_text(source.replace("test_fraction: 0.2", "test_fraction: 0.3"))
    monkeypatch.setattr(
        module,
        "TRAINED",
        {
            "gru": ("GRU", str(tmp_path / "no_validation.yaml")),
            "transformer": ("T", str(tmp_path / "other_test.yaml")),
        },
    )
    args = argparse.Namespace(
        data="builtin:chatterbot",
        test_data=None,
        overrides=[],
        systems=["gru", "transformer"],
        output=str(tmp_path),
    )
    with pytest.raises(UserError, match=r"other_test\.yaml splits seed 42 into other test questions"):
        module.compare(args, 42)
    line = capsys.readouterr().out  # the split printed is the first system's
    assert "no_validation.yaml's validation share" in line
    assert " 0 validation " in line
    assert not any(tmp_path.glob("seed-*"))  # refused before anything trained


def test_score_fusion_lines_the_second_system_up_with_the_first() -> None:
    module = _load(next(p for p in SCRIPTS if p.stem == "retrieval_fusion"))
    scores_b = np.array([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])  # questions x, y against answers a, b, c
    found = module.aligned(["x", "y"], ["a", "b", "c"], scores_b, ["y", "x"], ["c", "a", "b"])
    np.testing.assert_array_equal(found, [[0.6, 0.4, 0.5], [0.3, 0.1, 0.2]])
    with pytest.raises(UserError, match="not runs of the same split"):
        module.aligned(["x", "y"], ["a", "b", "c"], scores_b, ["x", "z"], ["a", "b", "c"])


def test_the_off_topic_study_counts_the_right_and_wrong_first_notes_that_declining_drops() -> None:
    module = _load(next(p for p in SCRIPTS if p.stem == "off_topic"))
    right = np.array([True, True, True, False, False])
    answered = np.array([True, True, False, True, False])
    costs = module._what_declining_costs(right, answered)
    assert costs["test_recall_at_1"] == pytest.approx(0.6)
    assert costs["answered_recall_at_1"] == pytest.approx(2 / 3)
    assert costs["right_declined"] == pytest.approx(1 / 3)
    assert costs["wrong_declined"] == pytest.approx(0.5)
    # TF-IDF's notes are training answers, never a held-out question's: no right note to lose.
    none_right = module._what_declining_costs(np.zeros(3, bool), np.array([True, False, True]))
    assert "right_declined" not in none_right
    assert none_right["wrong_declined"] == pytest.approx(1 / 3)
