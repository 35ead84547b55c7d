"""A tiny finished run and one export of it, shared by the serving tests."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from qa_assistant.serving import export_run
from qa_assistant.training.runner import train_run
from tests.helpers import faq_rows, tiny_config


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished classification run on the generated FAQ (a few seconds)."""
    root = tmp_path_factory.mktemp("serving_run")
    data = root / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    return train_run(tiny_config("train.epochs=3", train=data), root / "run").run_dir


@pytest.fixture(scope="session")
def tiny_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`saved_models/faq/1` exported from `tiny_run` (read-only for tests)."""
    return export_run(tiny_run, "faq", tmp_path_factory.mktemp("serving_export") / "saved_models")
