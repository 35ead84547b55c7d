"""A run directory is never mistaken for finished, never mixed with other data, never deleted by mistake."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from qa_assistant.config import load_config
from qa_assistant.errors import UserError
from qa_assistant.layout import RUN_MARKER, is_finished
from qa_assistant.serving import export_run
from qa_assistant.tasks import ClassificationTask
from qa_assistant.tasks.runs import load_run
from qa_assistant.training import run_directory
from qa_assistant.training.runner import train_run
from tests.helpers import faq_rows, tiny_config


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_a_crash_before_metrics_leaves_an_unfinished_run_that_resumes(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    config = tiny_config("train.epochs=3", train=data)  # tiny_run's config, on a copy of its data
    run = tmp_path / "run"

    def crash(*args, **kwargs):
        raise RuntimeError("power cut")

    with monkeypatch.context() as patch:
        # After the model is saved and tested, before metrics.json (evaluate also runs every epoch
        # for TensorBoard's prediction tables, so crashing there would stop the first epoch).
        patch.setattr(ClassificationTask, "baseline", crash)
        with pytest.raises(RuntimeError, match="power cut"):
            train_run(config, run)
    assert (run / "model.keras").is_file()
    assert not is_finished(run)
    with pytest.raises(UserError, match=r"is an unfinished run .*rerun its train command"):
        load_run(run)
    with pytest.raises(UserError, match="is an unfinished run"):
        export_run(run, "x", tmp_path / "saved_models")
    assert not (tmp_path / "saved_models" / "x").exists()

    original = data.read_bytes()
    data.write_bytes(original.replace(b"price", b"prize"))
    with pytest.raises(UserError, match=r"made from other data \(.*faq\.csv changed since it started\)"):
        train_run(tiny_config("train.epochs=3", train=data), run)
    data.write_bytes(original)

    result = train_run(config, run)
    assert not result.already_finished
    want = json.loads((tiny_run / "metrics.json").read_text())
    got = dict(result.metrics)
    want.pop("train_seconds"), got.pop("train_seconds")
    assert got == want  # the same numbers as a run that never crashed
    assert (run / RUN_MARKER).is_file()

    finished = (run / "metrics.json").read_bytes()
    with pytest.raises(UserError, match="does not exist"):
        train_run(tiny_config("train.epochs=3", train=tmp_path / "typo.csv"), run, restart=True)
    assert (run / "metrics.json").read_bytes() == finished  # a failed --restart deletes nothing
    leftover = run / "checkpoints" / "left-by-the-old-run"
    assert not leftover.parent.exists()  # a finished run keeps no (empty) checkpoints folder
    leftover.parent.mkdir()
    leftover.write_text("x")
    (run / "metrics.json").write_text('{"accuracy": -1}')  # a finished run whose numbers are not a training's
    again = train_run(config, run, restart=True)
    assert not again.already_finished
    assert not leftover.exists()  # the old run directory was deleted, not trained on top of
    got = json.loads((run / "metrics.json").read_text())
    got.pop("train_seconds")
    assert got == want  # trained again from scratch: the same numbers as the first training


def test_restart_and_output_refuse_directories_that_are_not_runs(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    precious = tmp_path / "documents"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    for restart in (False, True):
        with pytest.raises(UserError, match="holds other files, not a run") as error:
            train_run(tiny_config(train=data), precious, restart=restart)
        assert ("--restart only deletes run directories" in str(error.value)) == restart
    assert (precious / "thesis.txt").read_text() == "years of work"
    with pytest.raises(UserError, match="is a file; expected a directory"):
        train_run(tiny_config(train=data), data)
    with pytest.raises(UserError, match=r"lies under the file '.*faq\.csv'; expected a directory path"):
        train_run(tiny_config(train=data), data / "run")


def test_a_monitor_the_model_does_not_report_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    config = tiny_config("task.type=retrieve", "train.monitor=val_accuracy")
    with pytest.raises(UserError, match=r"val_in_batch_accuracy.*expected val_mrr"):
        train_run(config, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_ctrl_c_before_the_first_epoch_leaves_no_run_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa_assistant.training.runner as runner

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "fit_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(train=data), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # nothing to resume, nothing to refuse a changed config for


def test_files_a_killed_call_was_writing_are_removed_by_the_next(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from qa_assistant import atomic

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(gone.stdout)  # a process that has ended
    leftovers = [
        run / f"{atomic.TMP_PREFIX}{atomic._HOST}-{dead}-0123abcd-{n}" for n in ("metrics.json", "x")
    ]
    leftovers.append(run / "data" / f"{atomic.TMP_PREFIX}{atomic._HOST}-{dead}-0123abcd-train.jsonl")
    for path in leftovers:
        path.write_text("half written")
    config = load_run(run)[0]
    train_run(config, run)  # finished: nothing retrained, only the leftovers go
    assert not any(path.exists() for path in leftovers)
    assert is_finished(run)


def test_a_run_directory_is_locked_while_it_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import qa_assistant.training.runner as runner

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    probed: list[str] = []

    def second_process_arrives(*args, **kwargs):
        with pytest.raises(UserError, match="being written by another training process"):
            # A second open of the directory, as another process's.
            run_directory.RunLock(tmp_path / "run").acquire()
        probed.append("refused")
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "fit_model", second_process_arrives)
    with pytest.raises(KeyboardInterrupt):
        train_run(tiny_config(train=data), tmp_path / "run")
    assert probed == ["refused"]
    (tmp_path / "run").mkdir()
    with run_directory.RunLock(tmp_path / "run") as lock:
        lock.acquire()  # released when the call ended
        assert lock.held
        descriptor = lock.descriptor
        lock.acquire()  # held already: nothing to do (a second flock would refuse this process)
        assert lock.descriptor == descriptor


@pytest.fixture
def hold() -> Iterator[Callable[[Path], None]]:
    """Starts another process that makes a run directory, a file of its own in it, and locks it.

    Each such process lives 60 s at most and is stopped when the test ends.
    """
    holders: list[subprocess.Popen] = []

    def start(directory: Path) -> None:
        code = (
            "import fcntl, os, pathlib, time\n"
            f"path = pathlib.Path({str(directory)!r})\n"
            "path.mkdir(parents=True, exist_ok=True)\n"
            "(path / 'theirs.txt').write_text('training')\n"
            f"(path / {RUN_MARKER!r}).write_text('qa-assistant run directory')\n"
            "fd = os.open(path, os.O_RDONLY)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n"
        )
        holders.append(subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True))
        assert holders[-1].stdout.readline().strip() == "held"

    yield start
    for holder in holders:
        holder.kill()
        holder.wait(timeout=30)


@pytest.mark.parametrize("restart", [False, True])
def test_a_directory_another_process_trains_in_is_refused_and_kept(
    tmp_path: Path, hold: Callable[[Path], None], restart: bool
) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    hold(tmp_path / "busy")
    with pytest.raises(UserError, match="being written by another training process; expected another"):
        train_run(tiny_config(train=data), tmp_path / "busy", restart=restart)
    assert (tmp_path / "busy" / "theirs.txt").read_text() == "training"


def test_a_restart_never_empties_a_directory_that_another_process_took_meanwhile(
    tmp_path: Path, hold: Callable[[Path], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa_assistant.training.runner as runner

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    load = runner.load_qa_data

    def load_while_another_starts(config):
        loaded = load(config)
        hold(tmp_path / "run")  # it did not exist when this call began
        return loaded

    monkeypatch.setattr(runner, "load_qa_data", load_while_another_starts)
    with pytest.raises(UserError, match="being written by another training process"):
        train_run(tiny_config(train=data), tmp_path / "run", restart=True)
    assert (tmp_path / "run" / "theirs.txt").read_text() == "training"


def test_a_call_refused_the_lock_of_a_directory_it_made_removes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)

    def taken(self) -> None:  # another process locked it between this call's mkdir and its lock
        raise UserError(f"output '{self.run_dir}' is being written by another training process")

    monkeypatch.setattr(run_directory.RunLock, "acquire", taken)
    with pytest.raises(UserError, match="being written by another training process"):
        train_run(tiny_config(train=data), tmp_path / "run")
    assert (tmp_path / "run").is_dir()  # the other process's now


def test_a_file_system_without_locks_is_reported_once_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fcntl = pytest.importorskip("fcntl")

    def refuse(descriptor: int, operation: int) -> None:  # as some network file systems answer
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", refuse)
    (tmp_path / "run").mkdir()
    lock = run_directory.RunLock(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="qa_assistant.training.run_directory"):
        lock.acquire()
        lock.acquire()  # train_run tries again once it has made or emptied the directory
    assert not lock.held
    assert [r.getMessage() for r in caplog.records] == [
        f"could not lock {tmp_path / 'run'} (No locks available); training without a lock"
    ]


def test_train_seconds_counts_training_not_the_test_evaluation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa_assistant.training import runner

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    at_fit_end: list[float] = []
    fit_model, baseline = runner.fit_model, ClassificationTask.baseline

    def fit_and_read_the_clock(*args, **kwargs):
        fit_model(*args, **kwargs)
        at_fit_end.append(args[-1].train_seconds)  # the run's training state is fit_model's last argument

    def slow_baseline(self, splits):
        time.sleep(2.0)  # stands in for a language model answering the test questions
        return baseline(self, splits)

    monkeypatch.setattr(runner, "fit_model", fit_and_read_the_clock)
    monkeypatch.setattr(ClassificationTask, "baseline", slow_baseline)
    metrics = train_run(tiny_config("train.epochs=1", train=data), tmp_path / "run").metrics
    assert len(at_fit_end) == 1
    assert at_fit_end[0] - 0.01 <= metrics["train_seconds"] < at_fit_end[0] + 1.0


def _run_on_own_copy_of_data(tiny_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of `tiny_run` as if trained on `tmp_path/faq.csv` (the same bytes), which a test may change."""
    import shutil

    import yaml

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["sources"][0]["source"] = str(data)
    (run / "manifest.json").write_text(json.dumps(manifest))
    saved = yaml.safe_load((run / "config.yaml").read_text())
    saved["data"]["train"] = str(data)
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    return data, run


def test_a_finished_run_is_reused_only_for_the_same_config_and_data(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, run = _run_on_own_copy_of_data(tiny_run, tmp_path)
    config = tiny_config("train.epochs=3", train=data)
    assert train_run(config, run).already_finished  # the same config: its metrics, not a retraining
    # The same command from another directory names the file by another path: the same run.
    monkeypatch.chdir(tmp_path)
    elsewhere = tiny_config("train.epochs=3", train=Path("faq.csv"))
    assert train_run(elsewhere, run).already_finished
    with pytest.raises(
        UserError, match=r"finished run with a different config \(encoder.type 'gru' -> 'lstm'\)"
    ):
        train_run(tiny_config("train.epochs=3", "encoder.type=lstm", train=data), run)
    data.write_bytes(data.read_bytes().replace(b"price", b"prize"))
    with pytest.raises(UserError, match=r"finished run made from another version of '.*faq\.csv'"):
        train_run(config, run)
    with pytest.raises(UserError, match=r"different config \(data.train '.*faq\.csv' -> 'faq\.csv'\)"):
        train_run(elsewhere, run)  # another path to other bytes: another data file


def test_an_unfinished_run_resumes_when_its_data_file_is_named_by_another_path(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yaml

    from qa_assistant.training import runner
    from qa_assistant.training.runner import RunResult

    data, run = _run_on_own_copy_of_data(tiny_run, tmp_path)
    (run / "metrics.json").unlink()  # stopped before its end
    # Only the checks before training, not the training.
    monkeypatch.setattr(runner, "_train_and_evaluate", lambda task, data, run_dir, *_: RunResult(run_dir, {}))
    monkeypatch.chdir(tmp_path)
    elsewhere = tiny_config("train.epochs=3", train=Path("faq.csv"))
    assert train_run(elsewhere, run).run_dir == run  # the same bytes: resumed
    with pytest.raises(UserError, match="unfinished run with a different config"):
        train_run(tiny_config("train.epochs=3", "encoder.type=lstm", train=Path("faq.csv")), run)
    # The resumed run now records the path it was given; other bytes there are other data.
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["train"] == "faq.csv"
    data.write_bytes(data.read_bytes().replace(b"price", b"prize"))
    with pytest.raises(UserError, match=r"unfinished run made from other data \(faq\.csv changed"):
        train_run(elsewhere, run)
    with pytest.raises(UserError, match="unfinished run with a different config"):
        train_run(tiny_config("train.epochs=3", train=data), run)  # another path to other bytes


def test_a_failure_after_the_metrics_are_written_keeps_the_finished_run(tmp_path: Path) -> None:
    # Snapshots are discarded after metrics.json: a later error must not take the run for a new, empty one.
    from qa_assistant.training.run_directory import discard_if_new

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.json").write_text("{}")
    discard_if_new(run, created=True)
    assert (run / "metrics.json").is_file()
    (run / "metrics.json").unlink()
    discard_if_new(run, created=True)  # unfinished, no epoch saved: nothing to resume
    assert not run.exists()


def test_a_finished_run_is_reported_without_the_rules_for_training(
    tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run saved before a rule existed may break it; `train --name` on it still reports and exports."""
    import shutil

    from qa_assistant.training import runner

    def refuse(config: object) -> None:
        raise UserError("a rule this config breaks")

    monkeypatch.setattr(runner, "check_trains", refuse)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    assert runner.train_run(load_config([run / "config.yaml"]), run).already_finished
    with pytest.raises(UserError, match="a rule this config breaks"):
        runner.train_run(load_config([run / "config.yaml"]), tmp_path / "new")
