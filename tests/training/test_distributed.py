"""Replicated training: two workers on loopback, a model mirrored over two logical CPUs, and the loop against `fit`.

With no dropout and batches that split evenly over the replicas, data-parallel
training takes the same steps as one device, so both replicated runs must
end where the single-device reference run (`tiny_run`, same data and config)
ends, up to float rounding.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.data import load_qa_data
from qa_assistant.models.loading import load_keras_model
from qa_assistant.tasks import get_task
from qa_assistant.training.distributed import weights_fingerprint
from qa_assistant.training.fitting import build_training, fit_model
from qa_assistant.training.strategy import Placement, make_placement
from tests.helpers import TINY, tiny_config
from tests.training.conftest import RESUME_SETTINGS, ROOT, cli_env, run_cli

# What the tiny_run fixture trains with (tests/conftest.py), as CLI overrides.
REFERENCE = [*TINY, "train.epochs=3"]
WORKER_TIMEOUT = 300


def free_ports(count: int) -> list[int]:
    """Free ports on 127.0.0.1 that no other socket of this test run can be handed meanwhile.

    The ports cannot stay bound by the test until the workers bind them:
    TensorFlow's gRPC server turns SO_REUSEPORT off, so it fails on a port
    that anything else holds. Instead they come from below the kernel's
    ephemeral range (where a socket binding port 0, as every other server of
    the suite does, never lands), from a block of its own for each pytest-xdist
    worker, and each is checked free by binding it.
    """
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    block = 500
    start = low - block * (worker + 1)
    found: list[int] = []
    for port in random.Random().sample(range(start, start + block), block):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken by something outside this test run
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError(f"no {count} free ports in {start}-{start + block - 1}")


@contextlib.contextmanager
def workers(args: list[str], logs: Path, module: str = "qa_assistant") -> Iterator[list[subprocess.Popen]]:
    """One `train` process per worker of a loopback cluster; all are killed on the way out."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes: list[subprocess.Popen] = []
    try:
        for index in range(2):
            tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            with (logs / f"worker{index}.log").open("w") as log:
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", module, *args],
                        env=cli_env(TF_CONFIG=tf_config),
                        cwd=ROOT,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def finish(processes: list[subprocess.Popen], logs: Path) -> list[str]:
    """Waits for every worker (bounded); returns their outputs, failing with them if one failed."""
    for process in processes:
        process.wait(timeout=WORKER_TIMEOUT)
    outputs = [(logs / f"worker{i}.log").read_text() for i in range(len(processes))]
    codes = [p.returncode for p in processes]
    assert codes == [0] * len(processes), "\n\n".join(o[-3000:] for o in outputs)
    return outputs


def assert_same_weights(run: Path, reference: Path) -> None:
    for got, want in zip(
        load_keras_model(run / "model.keras").get_weights(),
        load_keras_model(reference / "model.keras").get_weights(),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)


def assert_same_metrics(run: Path, reference: Path) -> None:
    got, want = (json.loads((r / "metrics.json").read_text()) for r in (run, reference))
    got.pop("train_seconds"), want.pop("train_seconds")
    assert got == pytest.approx(want)


def epoch_scalars(log_dir: Path) -> dict[str, list[int]]:
    steps: dict[str, list[int]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                steps.setdefault(value.tag, []).append(event.step)
    return steps


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_two_workers_on_loopback_train_like_one_machine_and_only_the_chief_writes(
    tiny_run: Path, tmp_path: Path
) -> None:
    run, saved_models = tmp_path / "run", tmp_path / "saved_models"
    data = tiny_run.parent / "faq.csv"  # the file the reference run trained on
    args = ["train", "--train-data", str(data), "--output", str(run), "--name", "faq"]
    args += ["--saved-models", str(saved_models), "--set", *REFERENCE, "train.strategy=multi_worker"]
    with workers(args, tmp_path) as processes:
        chief, other = finish(processes, tmp_path)

    assert "multi_worker strategy (worker 0 of 2, 2 replica(s) in sync on CPU)" in chief
    fingerprints = [re.search(r"weights fingerprint (\w+)", out)[1] for out in (chief, other)]
    assert fingerprints[0] == fingerprints[1] == weights_fingerprint(load_keras_model(run / "model.keras"))

    # Only the chief writes: one run directory, one export.
    assert "exported:" in chief
    assert "worker done" in other
    assert "exported" not in other
    assert [p.name for p in (saved_models / "faq").iterdir()] == ["1"]
    assert {p.name for p in run.iterdir()} == {p.name for p in tiny_run.iterdir()}
    for split in ("train", "validation"):
        assert epoch_scalars(run / "logs" / split)["epoch_loss"] == [0, 1, 2]

    assert_same_weights(run, tiny_run)
    assert_same_metrics(run, tiny_run)


@pytest.mark.large  # slow (30-40 s: a training in its own process); CI runs it after the default suite (.ci/run)
def test_mirrored_over_two_logical_cpus_trains_like_one_device(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    data = tiny_run.parent / "faq.csv"
    args = ["train", "--train-data", str(data), "--output", str(run), "--set", *REFERENCE]
    done = run_cli("2", *args, "train.strategy=mirrored", module="tests.training.logical_cpus")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mirrored strategy (2 replica(s) in sync on CPU)" in done.stderr
    assert_same_weights(run, tiny_run)
    assert_same_metrics(run, tiny_run)


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
def test_the_loop_trains_and_logs_like_keras_fit(faq_csv: Path) -> None:
    config = tiny_config("train.jit_compile=false", train=faq_csv)
    data = load_qa_data(config)
    one_replica = Placement(tf.distribute.MirroredStrategy(["/cpu:0"]), "mirrored", ("CPU",))
    results = []
    for placement in (make_placement("default"), one_replica):
        keras.utils.set_random_seed(7)
        model, train_ds, val_ds, steps = build_training(get_task(config), data, placement)
        history = keras.callbacks.History()
        fit_model(model, placement, train_ds, steps, val_ds, config, [history], None)
        results.append((model.get_weights(), history.history))
    (fit_weights, fit_logs), (loop_weights, loop_logs) = results
    for got, want in zip(loop_weights, fit_weights, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert sorted(loop_logs) == sorted(fit_logs)  # loss, accuracy, top-k, val_*: the same keys
    for key, values in fit_logs.items():
        np.testing.assert_allclose(loop_logs[key], values, atol=1e-6, err_msg=key)


@pytest.mark.large
def test_killed_workers_resume_from_the_chiefs_snapshot(faq_file: Path, tmp_path: Path) -> None:
    """Both workers killed after epoch 3's snapshot; rerun: the pair ends exactly like an uninterrupted pair."""
    settings = ["--set", *RESUME_SETTINGS, "train.strategy=multi_worker"]

    def args(run: Path) -> list[str]:
        return ["train", "--train-data", str(faq_file), "--output", str(run), *settings]

    reference, run = tmp_path / "reference", tmp_path / "run"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    with workers(args(reference), tmp_path / "a") as processes:
        finish(processes, tmp_path / "a")
    with workers(args(run), tmp_path / "b", module="tests.training.slow_cli") as processes:
        deadline = time.monotonic() + WORKER_TIMEOUT
        while not (run / "checkpoints" / "state-000003").is_dir():
            assert all(p.poll() is None for p in processes), "a worker ended before epoch 3 was saved"
            assert time.monotonic() < deadline, "timed out waiting for epoch 3's snapshot"
            time.sleep(0.05)
    assert not (run / "metrics.json").exists()
    with workers(args(run), tmp_path / "c") as processes:
        chief, _ = finish(processes, tmp_path / "c")
    assert re.search(r"resumed from .*state-00000[34]: [34] epochs done", chief)
    want, got = (json.loads((r / "metrics.json").read_text()) for r in (reference, run))
    want.pop("train_seconds"), got.pop("train_seconds")
    assert got == want
    for a, b in zip(
        load_keras_model(reference / "model.keras").get_weights(),
        load_keras_model(run / "model.keras").get_weights(),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
