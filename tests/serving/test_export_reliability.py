"""Exports are atomic and checked: kills, full disks, write errors, races and bad parity lose nothing."""

from __future__ import annotations

import concurrent.futures
import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.layout import validate_name
from qa_assistant.serving import export as export_module
from qa_assistant.serving.export import SCORE_TOLERANCE, check_parity, export_run, replay_warmup
from qa_assistant.serving.savedmodel import load_signature
from qa_assistant.serving.warmup import WARMUP_FILE, read_warmup, rename_warmup
from qa_assistant.tasks import ClassificationTask

ROOT = Path(__file__).resolve().parents[2]


def tree_digest(path: Path) -> dict[str, str]:
    """Every file under `path` with the SHA-256 of its bytes."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def published(tiny_export: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """`tmp_path/saved_models/faq/1` (a copy of a real export) and its digest."""
    version = tmp_path / "saved_models" / "faq" / "1"
    shutil.copytree(tiny_export, version)
    return version, tree_digest(version)


def assert_nothing_new(published: tuple[Path, dict[str, str]]) -> None:
    version, digest = published
    model_dir = version.parent
    assert sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".tmp-")) == ["1"]
    assert tree_digest(version) == digest


def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


# -- the check that runs at every export ---------------------------------------


def test_warmup_file_holds_real_questions_and_every_record_replays(tiny_export: Path, tiny_run: Path) -> None:
    path = tiny_export / "assets.extra" / WARMUP_FILE
    requests = read_warmup(path)
    assert [len(r.inputs["question"]) for r in requests] == [1, 8, 32]
    run_questions = set()
    for split in ("train", "validation", "test"):
        run_questions |= set(pd.read_json(tiny_run / "data" / f"{split}.jsonl", lines=True)["question"])
    labels = set(json.loads((tiny_run / "labels.json").read_text(encoding="utf-8")))
    serve = tf.saved_model.load(str(tiny_export)).signatures["serving_default"]
    for request in requests:
        assert (request.model_name, request.signature) == ("faq", "serving_default")
        questions = request.inputs["question"]
        assert {q.decode() for q in questions} <= run_questions
        out = serve(question=tf.constant(questions))
        assert {k: v.shape[0] for k, v in out.items()} == dict.fromkeys(out, len(questions))
        assert {a.decode() for a in out["answer"].numpy()} <= labels
    assert replay_warmup(load_signature(tiny_export), path) == 3


def fake_serve(outputs: dict[str, np.ndarray]):
    def serve(question: tf.Tensor) -> dict[str, tf.Tensor]:
        return {k: tf.constant(v) for k, v in outputs.items()}

    return serve


def test_a_warmup_file_renamed_keeps_its_requests(tiny_export: Path, tmp_path: Path) -> None:
    copy = tmp_path / WARMUP_FILE
    shutil.copy(tiny_export / "assets.extra" / WARMUP_FILE, copy)
    rename_warmup(copy, "faq-copy")
    before, after = read_warmup(tiny_export / "assets.extra" / WARMUP_FILE), read_warmup(copy)
    assert [r.model_name for r in after] == ["faq-copy"] * len(before)
    assert [(r.signature, r.inputs["question"].tolist()) for r in after] == [
        (r.signature, r.inputs["question"].tolist()) for r in before
    ]


def test_parity_is_generic_over_outputs() -> None:
    questions = ["a", "b"]
    expected = {
        "answer": np.array([b"x", b"y"], dtype=object),
        "score": np.array([0.5, 0.25], dtype=np.float32),
        "token_ids": np.array([[3, 4], [5, 0]], dtype=np.int32),
    }
    close = {**expected, "score": expected["score"] + SCORE_TOLERANCE / 2, "extra": np.zeros(2)}
    check_parity(fake_serve(close), expected, questions)  # within tolerance; extra outputs are fine

    cases = [
        (
            {**expected, "token_ids": np.array([[3, 4], [5, 1]], dtype=np.int32)},
            "'token_ids' differs for question 'b'",
        ),
        (
            {**expected, "score": expected["score"] + 3 * SCORE_TOLERANCE},
            "'score' differs by 3.00e-04 (tolerance",
        ),
        ({**expected, "answer": np.array([b"z", b"y"], dtype=object)}, "'answer' differs for question 'a'"),
        (
            {**expected, "token_ids": np.zeros((2, 3), np.int32)},
            "'token_ids' has shape (2, 3); the in-process",
        ),
        (
            {k: v for k, v in expected.items() if k != "score"},
            "has no output 'score' (it has: answer, token_ids)",
        ),
    ]
    for outputs, message in cases:
        with pytest.raises(UserError, match="export check failed") as error:
            check_parity(fake_serve(outputs), expected, questions)
        assert message in str(error.value)


def test_failing_parity_aborts_and_publishes_nothing(
    tiny_run: Path, published: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    predict = ClassificationTask.predict

    def drifting(self, model, questions, top_k):
        out = predict(self, model, questions, top_k)
        out["answer"] = out["answer"].copy()
        out["answer"][1] = b"not what the export says"
        return out

    monkeypatch.setattr(ClassificationTask, "predict", drifting)
    with pytest.raises(UserError) as error:
        export_run(tiny_run, "faq", published[0].parents[1])
    assert str(error.value).startswith("export check failed: output 'answer' differs for question")
    assert "\n" not in str(error.value)
    assert_nothing_new(published)
    assert not list(published[0].parent.glob(".tmp-*"))
    # A first export of a new name that fails leaves no empty model directory behind.
    with pytest.raises(UserError, match="export check failed"):
        export_run(tiny_run, "brand-new", published[0].parents[1])
    assert not (published[0].parents[1] / "brand-new").exists()


# -- failures while writing ------------------------------------------------------


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "injected")


@pytest.mark.parametrize("target", ["write_warmup", "os.rename"])
def test_write_errors_at_each_stage_lose_nothing(
    tiny_run: Path, published: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    if target == "os.rename":
        monkeypatch.setattr(os, "rename", no_space)
    else:
        monkeypatch.setattr(export_module, target, no_space)
    with pytest.raises(UserError, match="No space left on device") as error:
        export_run(tiny_run, "faq", published[0].parents[1])
    assert "nothing was published and existing versions are untouched" in str(error.value)
    assert_nothing_new(published)
    assert not list(published[0].parent.glob(".tmp-*"))


def test_disk_full_while_tensorflow_writes_the_savedmodel(
    tiny_run: Path, published: tuple[Path, dict[str, str]]
) -> None:
    # RLIMIT_FSIZE makes every write past 100 kB fail (EFBIG) inside TensorFlow's own C++ writer.
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "from qa_assistant import cli\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "export", "--run", str(tiny_run), "--name", "faq"],
        cwd=published[0].parents[2],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "File too large" in errors[0]
    assert "Traceback" not in done.stderr
    assert_nothing_new(published)
    assert not list(published[0].parent.glob(".tmp-*"))


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_kill_during_export_then_next_export_cleans_up(
    tiny_run: Path, published: tuple[Path, dict[str, str]]
) -> None:
    model_dir = published[0].parent
    process = subprocess.Popen(
        [sys.executable, "-m", "qa_assistant", "export", "--run", str(tiny_run), "--name", "faq"],
        cwd=model_dir.parents[1],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 240
    while not list(model_dir.glob(".tmp-*/saved_model.pb")) and process.poll() is None:
        assert time.monotonic() < deadline, "the export never started writing"
        time.sleep(0.01)
    process.kill()
    assert process.wait() == -signal.SIGKILL  # killed mid-export, not finished
    assert_nothing_new(published)
    assert len(list(model_dir.glob(".tmp-*"))) == 1  # the half-written version, invisible to TF Serving

    second = export_run(tiny_run, "faq", model_dir.parent)
    assert second == model_dir / "2"
    assert not list(model_dir.glob(".tmp-*"))
    assert tree_digest(published[0]) == published[1]


def test_concurrent_publishes_get_distinct_versions(tmp_path: Path) -> None:
    model_dir = tmp_path / "faq"
    model_dir.mkdir()
    stagings = []
    for index in range(8):
        staging = model_dir / f".tmp-staging-{index}"
        staging.mkdir()
        (staging / "saved_model.pb").write_text(str(index))
        stagings.append(staging)
    start = threading.Barrier(len(stagings))

    def publish(staging: Path) -> Path:
        start.wait()  # all renames race for the same next number
        return export_module._next_version(staging, model_dir)

    with concurrent.futures.ThreadPoolExecutor(len(stagings)) as pool:
        versions = list(pool.map(publish, stagings))
    assert sorted(int(v.name) for v in versions) == list(range(1, 9))
    assert sorted((v / "saved_model.pb").read_text() for v in versions) == [str(i) for i in range(8)]


@pytest.mark.large
def test_concurrent_exports_of_one_name_get_distinct_versions(
    tiny_run: Path, published: tuple[Path, dict[str, str]]
) -> None:
    model_dir = published[0].parent
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "qa_assistant", "export", "--run", str(tiny_run), "--name", "faq"],
            cwd=model_dir.parents[1],
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    versions = sorted(Path(out.strip().splitlines()[-1]).name for out, _ in outputs)
    assert versions == ["2", "3", "4"]
    assert sorted(p.name for p in model_dir.iterdir()) == ["1", "2", "3", "4"]
    answers = [
        load_signature(model_dir / v)(question=tf.constant(["price?"]))["answer"].numpy() for v in versions
    ]
    assert answers[0] == answers[1] == answers[2]
    assert tree_digest(published[0]) == published[1]


def test_publish_retries_when_another_export_takes_the_number(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "faq"
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "saved_model.pb").write_text("theirs")
    staging = model_dir / ".tmp-staging"
    staging.mkdir()
    (staging / "saved_model.pb").write_text("ours")
    calls = []

    def stale_then_fresh(path: Path) -> list[int]:
        # The first look misses version 1 (another export published it just after); the second sees it.
        calls.append(path)
        return [] if len(calls) == 1 else [1]

    monkeypatch.setattr(export_module, "version_numbers", stale_then_fresh)
    assert export_module._next_version(staging, model_dir) == model_dir / "2"
    assert (model_dir / "1" / "saved_model.pb").read_text() == "theirs"
    assert (model_dir / "2" / "saved_model.pb").read_text() == "ours"


# -- names and paths ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "", "x" * 65, "/abs", "a\\b", "név"])
def test_model_names_cannot_escape_saved_models(name: str) -> None:
    with pytest.raises(UserError, match="is not allowed"):
        validate_name(name)


def test_a_symlinked_model_directory_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "saved_models"
    root.mkdir()
    (root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UserError, match="leads outside"):
        export_run(tiny_run, "evil", root)
    assert not list(outside.iterdir())


@pytest.mark.large  # a training and an export (about 25 s); CI runs it after the default suite (.ci/run)
def test_a_run_without_validation_questions_exports(tmp_path: Path) -> None:
    """The README's three-row example splits into 2 train / 0 validation / 1 test; its run exports."""
    from qa_assistant.training.runner import train_run
    from tests.helpers import tiny_config

    readme_rows = [
        ("When are you open?", "Our opening hours are 9 to 5, Monday to Friday."),
        ("What are your hours?", "Our opening hours are 9 to 5, Monday to Friday."),
        ("How much is the basic plan?", "A basic plan costs 10 euros per month."),
    ]
    data = tmp_path / "mine.csv"
    pd.DataFrame(readme_rows, columns=["question", "answer"]).to_csv(data, index=False)
    run = train_run(tiny_config("task.type=retrieve", train=data), tmp_path / "run").run_dir
    assert (run / "data" / "validation.jsonl").read_text(encoding="utf-8") == ""

    version = export_run(run, "me", tmp_path / "saved_models")
    answers = load_signature(version)(question=tf.constant(["when do you open?"]))["answer"].numpy()
    assert answers[0].decode() in {answer for _, answer in readme_rows}


def test_parity_questions_skip_a_split_written_as_one_blank_line(tmp_path: Path) -> None:
    """Runs made before empty splits were written as empty files hold "\\n" there; they still export."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "validation.jsonl").write_text("\n", encoding="utf-8")
    (tmp_path / "data" / "test.jsonl").write_text('{"question": "q1", "answer": "a"}\n', encoding="utf-8")
    assert export_module._sample_questions(tmp_path, 5) == ["q1"]
