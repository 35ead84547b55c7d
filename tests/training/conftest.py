"""A run trained by the real CLI in a fresh process, the reference for resume and determinism tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import faq_rows

ROOT = Path(__file__).resolve().parents[2]
# Tiny, with dropout (random state in the model), early stopping that fires
# (lr 0.05 over-fits after ~7 epochs) and a reshuffled training set.
RESUME_SETTINGS = [
    "text.max_length=8",
    "embedding.dim=8",
    "encoder.units=8",
    "encoder.dropout=0.3",
    "train.epochs=30",
    "train.batch_size=8",
    "train.learning_rate=0.05",
    "train.early_stopping=2",
    "export.top_k=3",
]


def train_args(data: Path, output: Path) -> list[str]:
    """`qa-assistant train` arguments for the reference run."""
    return ["train", "--train-data", str(data), "--output", str(output), "--set", *RESUME_SETTINGS]


def config_overrides(data: Path) -> list[str]:
    """The same config as `train_args`, as `load_config` overrides (what the CLI builds)."""
    return [*RESUME_SETTINGS, f"data.train={json.dumps(str(data))}"]


def cli_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", **extra}


def run_cli(*args: str, module: str = "qa_assistant", **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=cli_env(**env),
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def faq_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("resume_data") / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def uninterrupted_run(faq_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference run: the CLI, start to finish, in one fresh process."""
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    done = run_cli(*train_args(faq_file, run))
    assert done.returncode == 0, done.stderr[-3000:]
    return run
