"""`kill -9` at any point, rerun the same command: the run ends exactly as if never interrupted."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.models.loading import load_keras_model
from tests.training.conftest import ROOT, cli_env, run_cli, train_args

SLOW = "tests.training.slow_cli"


def start_slow(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", SLOW, *args],
        env=cli_env(**{"QA_TEST_EPOCH_SLEEP": "0.3", **env}),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def kill_when(process: subprocess.Popen, ready, what: str) -> None:
    deadline = time.monotonic() + 300
    while not ready():
        assert process.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL


def events(log_dir: Path) -> dict[str, list[tuple[int, float | str]]]:
    """Every summary in the event files, in file order: tag -> [(step, value)].

    Scalars are numbers; text tables and images are compared by a digest of their bytes.
    """
    found: dict[str, list[tuple[int, float | str]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if not value.HasField("tensor"):
                    found.setdefault(value.tag, []).append((event.step, value.simple_value))
                    continue
                array = tf.make_ndarray(value.tensor)
                number = array.ndim == 0 and array.dtype.kind in "fiu"
                shown = (
                    float(array) if number else hashlib.sha256(value.tensor.SerializeToString()).hexdigest()
                )
                found.setdefault(value.tag, []).append((event.step, shown))
    return found


def patience_running_at(run: Path) -> int:
    """Epochs done at the first snapshot where early stopping's patience counts and training goes on."""
    losses = [value for _, value in sorted(events(run / "logs" / "validation")["epoch_loss"])]
    for epoch in range(1, len(losses) - 1):
        if losses[epoch] > min(losses[:epoch]):
            return epoch + 1
    pytest.fail(f"validation loss never rose before the last epoch ({losses}); retune RESUME_SETTINGS")


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_kill_9_mid_save_then_resume_matches_the_uninterrupted_run(
    uninterrupted_run: Path, faq_file: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    checkpoints = run / "checkpoints"
    args = train_args(faq_file, run)

    # Killed inside a snapshot's save (files written, rename not done) while
    # early stopping's patience counts: the resumed run must redo that epoch
    # with the patience counter, best value and best weights saved before it.
    saved = patience_running_at(uninterrupted_run)
    first = start_slow(args, QA_TEST_PAUSE_IN_SAVE=str(saved + 1))
    kill_when(
        first,
        lambda: any((p / "state.json").is_file() for p in checkpoints.glob(f".tmp-*state-{saved + 1:06d}")),
        f"epoch {saved + 1}'s save",
    )
    assert sorted(p.name for p in checkpoints.glob("state-*")) == [f"state-{saved:06d}"]
    state = json.loads((checkpoints / f"state-{saved:06d}" / "state.json").read_text())
    assert state["callbacks"]["early_stopping"]["wait"] >= 1
    assert not state["stopped"]
    assert not (run / "metrics.json").exists()

    done = run_cli(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{saved} epochs done" in done.stderr
    assert not list(checkpoints.glob(".tmp-*"))  # the half-written snapshot was cleared

    want = json.loads((uninterrupted_run / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    want.pop("train_seconds"), got.pop("train_seconds")
    assert got == want
    assert saved < got["epochs_run"] < 30  # early stopping fired after the restart

    for a, b in zip(
        load_keras_model(uninterrupted_run / "model.keras").get_weights(),
        load_keras_model(run / "model.keras").get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    predictions = [pd.read_json(r / "predictions.jsonl", lines=True) for r in (uninterrupted_run, run)]
    pd.testing.assert_frame_equal(*predictions)

    # "": the HParams session with the best epoch's metrics and the test metrics.
    for split in ("", "train", "validation"):
        logged, reference = events(run / "logs" / split), events(uninterrupted_run / "logs" / split)
        assert set(logged) == set(reference)
        for tag, points in logged.items():
            assert all(n == 1 for n in Counter(step for step, _ in points).values()), (
                f"{split}/{tag} repeats a step"
            )
            assert sorted(points) == sorted(reference[tag]), f"{split}/{tag}"
    assert len(events(run / "logs" / "train")["epoch_learning_rate"]) == got["epochs_run"]
    session = events(run / "logs")
    assert len(session["_hparams_/session_start_info"]) == 1
    assert len(session["best/val_loss"]) == got["epochs_run"]
    # metrics.json carries the best epoch's validation metrics, as its final `best/` scalars.
    final = max(session["best/val_loss"])[1]
    assert got["best_val_loss"] == pytest.approx(final)
    lowest = min(value for _, value in events(run / "logs" / "validation")["epoch_loss"])
    assert got["best_val_loss"] == pytest.approx(lowest, rel=1e-6)
    assert not list(checkpoints.glob("state-*"))  # a finished run keeps no resume state


@pytest.mark.large
@pytest.mark.parametrize("delay", [1.0, 3.0, 5.0, 7.0, 9.0, 11.0])
def test_kill_9_at_random_moments(
    uninterrupted_run: Path, faq_file: Path, tmp_path: Path, delay: float
) -> None:
    """A kill at a given time after start: data writing, XLA compilation, an epoch, a save, evaluation."""
    run = tmp_path / "run"
    process = start_slow(train_args(faq_file, run), QA_TEST_EPOCH_SLEEP="0.2")
    time.sleep(delay)
    assert process.poll() is None, f"the run ended within {delay} s: the kill would test nothing"
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert not (run / "metrics.json").exists()  # killed unfinished
    done = run_cli(*train_args(faq_file, run))
    assert done.returncode == 0, done.stderr[-3000:]
    want = json.loads((uninterrupted_run / "metrics.json").read_text())
    got = json.loads((run / "metrics.json").read_text())
    want.pop("train_seconds"), got.pop("train_seconds")
    assert got == want
