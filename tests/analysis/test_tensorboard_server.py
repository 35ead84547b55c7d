"""A real TensorBoard server over a tiny run: what a user opens in the browser is there.

`qa-assistant tensorboard` starts in a subprocess on 127.0.0.1 with a free
port; the test reads the run's data through TensorBoard's HTTP data API (the
same requests the dashboards make), then always stops the server. Every wait
is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.training.conftest import ROOT, cli_env

START_SECONDS = 120  # Python + TensorFlow + TensorBoard start-up on 2 busy cores
LOAD_SECONDS = 60  # the first pass over the event files
URL = re.compile(r"http://(127\.0\.0\.1):(\d+)/")


@pytest.fixture
def board(tiny_run: Path) -> Iterator[str]:
    """The base URL of a TensorBoard serving `tiny_run`; stopped however the test ends."""
    process = subprocess.Popen(
        [sys.executable, "-m", "qa_assistant", "tensorboard", str(tiny_run), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        yield _wait_for_url(process)
    finally:
        _stop(process)


def _wait_for_url(process: subprocess.Popen) -> str:
    deadline = time.monotonic() + START_SECONDS
    seen = []
    os.set_blocking(process.stderr.fileno(), False)
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if line:
            seen.append(line)
            if match := URL.search(line):
                return match[0]
        elif process.poll() is not None:
            pytest.fail(f"TensorBoard exited with {process.returncode}: {''.join(seen)[-2000:]}")
        else:
            time.sleep(0.2)
    pytest.fail(f"TensorBoard printed no address within {START_SECONDS} s: {''.join(seen)[-2000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)
    process.stderr.close()


def _get(url: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _listening_addresses(port: int) -> set[str]:
    """Local addresses of the LISTEN sockets on `port` (Linux /proc; hex as the kernel writes them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not os.path.exists(table):
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_tensorboard_serves_curves_hparams_sample_tables_and_the_projector(
    board: str, tiny_run: Path
) -> None:
    host, port = URL.match(board).groups()
    assert host == "127.0.0.1"
    if os.path.exists("/proc/net/tcp"):
        assert _listening_addresses(int(port)) == {"0100007F"}  # 127.0.0.1 only, no wildcard, no IPv6

    deadline = time.monotonic() + LOAD_SECONDS
    while set(_get(board + "data/runs")) != {"logs", "logs/train", "logs/validation", "logs/projector"}:
        assert time.monotonic() < deadline, f"runs never loaded: {_get(board + 'data/runs')}"
        time.sleep(1)

    # Scalar curves: one point per epoch, loss and learning rate included.
    epochs = json.loads((tiny_run / "metrics.json").read_text())["epochs_run"]
    tags = _get(board + "data/plugin/scalars/tags")
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(tags["logs/train"])
    assert {"epoch_loss", "epoch_accuracy"} <= set(tags["logs/validation"])
    curve = _get(board + "data/plugin/scalars/scalars?run=logs/validation&tag=epoch_loss")
    assert [step for _, step, _ in curve] == list(range(epochs))

    # HParams: the session is the run, its best validation loss is the minimum of the curve.
    experiment = _get(board + "data/plugin/hparams/experiment", {"experimentName": ""})
    assert {"encoder.type", "encoder.units", "train.learning_rate"} <= {
        h["name"] for h in experiment["hparamInfos"]
    }
    groups = _get(
        board + "data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [
                {"hparam": "encoder.type"},
                {"metric": {"group": "", "tag": "best/val_loss"}},
                {"metric": {"group": "", "tag": "test/accuracy"}},
                {"metric": {"group": "validation", "tag": "epoch_loss"}},
            ],
            "startIndex": 0,
            "sliceSize": 10,
        },
    )["sessionGroups"]
    assert len(groups) == 1
    assert groups[0]["hparams"]["encoder.type"] == "gru"
    values = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in groups[0]["metricValues"]}
    assert values[("", "best/val_loss")] == pytest.approx(min(value for _, _, value in curve), rel=1e-6)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert values[("", "test/accuracy")] == pytest.approx(metrics["accuracy"], rel=1e-6)

    # Text summaries: a sample-prediction table every epoch.
    assert "sample_predictions" in _get(board + "data/plugin/text/tags")["logs/validation"]
    texts = _get(board + "data/plugin/text/text?run=logs/validation&tag=sample_predictions")
    assert [t["step"] for t in texts] == list(range(epochs))
    for cell in ("question", "reference", "predicted", "score", _first_validation_question(tiny_run)):
        assert f"<td><p>{cell}</p></td>" in texts[-1]["text"]

    _assert_projector_serves_the_words(board, tiny_run)


def _assert_projector_serves_the_words(board: str, run: Path) -> None:
    """The Projector tab is enabled, lists the run, and serves its word vectors and labels."""
    deadline = time.monotonic() + LOAD_SECONDS
    while not _get(board + "data/plugins_listing")["projector"]["enabled"]:
        assert time.monotonic() < deadline, "the projector plugin never became active"
        time.sleep(1)
    assert _get(board + "data/plugin/projector/runs") == ["logs/projector"]
    info = _get(board + "data/plugin/projector/info?run=logs/projector")
    words = next(e for e in info["embeddings"] if e["tensorName"].startswith("words/"))
    vocabulary = (run / "preprocessor" / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    rows, dim = words["tensorShape"]
    assert rows == len(vocabulary)
    query = f"run=logs/projector&name={urllib.parse.quote(words['tensorName'])}"
    with urllib.request.urlopen(f"{board}data/plugin/projector/tensor?{query}", timeout=30) as response:
        assert len(response.read()) == rows * dim * 4  # float32 rows, as the browser reads them
    with urllib.request.urlopen(f"{board}data/plugin/projector/metadata?{query}", timeout=30) as response:
        labels = response.read().decode("utf-8").split("\n")
    assert labels[1] == vocabulary[1] == "[UNK]"
    assert labels[2] == vocabulary[2]


def _first_validation_question(run: Path) -> str:
    with (run / "data" / "validation.jsonl").open(encoding="utf-8") as lines:
        return json.loads(next(lines))["question"]
