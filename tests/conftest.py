"""Shared fixtures: tiny generated Q/A files and tiny configs.

Everything a test reads is generated here or comes from an installed package.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Before TensorFlow / TFDS are imported: quiet C++ logs, and keep TFDS's cache
# of the builtin corpus out of the user's ~/tensorflow_datasets. Each test then
# gets its own (`_own_state`); this one is for whatever runs outside a test.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault(
    "TFDS_DATA_DIR",
    str(
        Path(tempfile.gettempdir())
        / f"qa_assistant_test_tfds_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    ),
)

import pandas as pd
import pytest

from tests.helpers import faq_rows, tiny_config

# In CI (CI=true) a skipped test fails: a missing package or file must not pass as a
# green run. Only a missing accelerator may skip, with a reason starting like this.
DEVICE_SKIP_PREFIXES = ("needs a GPU", "needs a TPU")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        if not reason.startswith(DEVICE_SKIP_PREFIXES):
            report.outcome = "failed"
            report.longrepr = f"skipped in CI, which allows skips only for a missing device: {reason}"


@pytest.fixture(autouse=True)
def _own_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test owns its TFDS cache and gets the package logger back as it found it.

    A fresh TFDS directory means every test that reads the builtin corpus builds
    it, as a user's first run does. `cli.main` takes the package logger over (its
    own handler, no propagation), which would hide later tests' log records from
    pytest's capture.
    """
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    logger = logging.getLogger("qa_assistant")
    saved = logger.handlers[:], logger.level, logger.propagate
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def faq_csv(tmp_path: Path) -> Path:
    path = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(path, index=False)
    return path


@pytest.fixture
def faq_split_files(tmp_path: Path) -> tuple[Path, Path]:
    """Train and test files with disjoint phrasings of the same answers."""
    rows = faq_rows(seed=1, per_answer=10)
    seen: dict[str, int] = {}
    train, test = [], []
    for row in rows:
        seen[row["answer"]] = seen.get(row["answer"], 0) + 1
        (test if seen[row["answer"]] <= 2 else train).append(row)
    train_path, test_path = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame(train).to_csv(train_path, index=False)
    pd.DataFrame(test).to_csv(test_path, index=False)
    return train_path, test_path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished classification run on the generated FAQ (a few seconds; read-only for tests)."""
    from qa_assistant.training.runner import train_run

    root = tmp_path_factory.mktemp("tiny_run")
    data = root / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    return train_run(tiny_config("train.epochs=3", train=data), root / "run").run_dir


@pytest.fixture(scope="session")
def tiny_export(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`saved_models/faq/1` exported from `tiny_run` (read-only for tests)."""
    from qa_assistant.serving import export_run

    return export_run(tiny_run, "faq", tmp_path_factory.mktemp("tiny_export") / "saved_models")
