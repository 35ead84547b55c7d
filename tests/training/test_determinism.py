"""Same data, config and seed on CPU: identical metrics and identical exported answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from qa_assistant.config import load_config
from qa_assistant.serving import export_run
from qa_assistant.serving.export import HOSTILE_QUESTIONS
from qa_assistant.serving.savedmodel import load_signature
from qa_assistant.training.runner import train_run
from tests.training.conftest import config_overrides, run_cli


@pytest.mark.large  # a minute or more on 2 cores; CI runs it after the default suite (.ci/run)
def test_same_seed_same_metrics_and_same_exported_answers(
    uninterrupted_run: Path, faq_file: Path, tmp_path: Path
) -> None:
    # The reference ran in its own process through the CLI; this one runs here.
    again = train_run(load_config([], config_overrides(faq_file)), tmp_path / "again")
    want = json.loads((uninterrupted_run / "metrics.json").read_text())
    got = dict(again.metrics)
    want.pop("train_seconds"), got.pop("train_seconds")
    assert got == want

    questions = [
        *(json.loads(line)["question"] for line in (uninterrupted_run / "data" / "test.jsonl").open()),
        *HOSTILE_QUESTIONS,
    ]
    outputs = []
    for run, name in ((uninterrupted_run, "first"), (again.run_dir, "second")):
        version = export_run(run, name, tmp_path / "saved_models")
        outputs.append(
            {k: v.numpy() for k, v in load_signature(version)(question=np.array(questions)).items()}
        )
    assert outputs[0].keys() == outputs[1].keys()
    for key in outputs[0]:
        np.testing.assert_array_equal(outputs[0][key], outputs[1][key], err_msg=key)  # bit for bit


@pytest.mark.large  # two CLI trainings with XLA compiles: minutes on 2 cores; CI runs it
def test_shipped_config_repeats_right_after_a_fresh_builtin_build(tmp_path: Path) -> None:
    """The article config (sizes shrunk) twice in separate processes: first on an empty TFDS directory.

    Building the builtin corpus's cache draws from the global random generators;
    a run started right after that build must still train like every later run.
    """
    shrink = [
        "train.epochs=2",
        "encoder.units=8",
        "embedding.dim=8",
        "tensorboard.samples=0",
        "tensorboard.confusion_classes=0",
    ]
    tfds_dir = tmp_path / "tfds"  # empty: the first run builds the corpus
    outcomes = []
    for name in ("right-after-build", "from-cache"):
        done = run_cli(
            "train",
            "--config",
            "experiments/configs/article_gru.yaml",
            "--output",
            str(tmp_path / name),
            "--set",
            *shrink,
            TFDS_DATA_DIR=str(tfds_dir),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        outcomes.append((done.stdout + done.stderr, *_results(tmp_path / name)))
    assert "Downloading and preparing dataset" in outcomes[0][0]  # the first run did build it
    assert "Downloading and preparing dataset" not in outcomes[1][0]
    assert outcomes[0][1:] == outcomes[1][1:]  # metrics, then every test prediction with its score


def _results(run: Path) -> tuple[dict, str]:
    metrics = json.loads((run / "metrics.json").read_text())
    metrics.pop("train_seconds")
    return metrics, (run / "predictions.jsonl").read_text()
