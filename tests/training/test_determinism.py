"""Same data, config and seed on CPU: identical metrics and identical exported answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qa_assistant.config import load_config
from qa_assistant.serving import export_run
from qa_assistant.serving.export import HOSTILE_QUESTIONS, load_signature
from qa_assistant.training.runner import train_run
from tests.training.conftest import config_overrides


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
