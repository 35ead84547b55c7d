"""`qa-assistant tune`: the search space, the k-fold objective on the training data alone, resuming, the budget."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from qa_assistant.analysis.tune import (
    BEST_YAML,
    HPARAMS_DIR,
    POOL_FILE,
    TRIALS_DIR,
    TRIALS_TABLE,
    TUNE_JSON,
    Param,
    default_space,
    parse_param,
    parse_space,
    tune,
)
from qa_assistant.cli import main, parse_duration
from qa_assistant.config import load_config
from qa_assistant.data.dataset import load_qa_data
from qa_assistant.errors import UserError
from tests.helpers import TINY, faq_rows

FAST = [
    *TINY,
    "train.epochs=1",
    "train.jit_compile=false",
    "tensorboard.confusion_classes=0",
    "tensorboard.samples=0",
]
SPACE = {"train.learning_rate": parse_param("train.learning_rate=log:0.002:0.05")}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tune")
    data = directory / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=10)).to_csv(data, index=False)
    path = directory / "base.yaml"
    path.write_text(f"data: {{train: {json.dumps(str(data))}}}\n")
    return path


@pytest.fixture(scope="module")
def study(base: Path) -> Path:
    """Three finished trials of a 2-fold search over the learning rate, chosen on the search's scores."""
    root = base.parent / "study"
    tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=3, budget_seconds=3600, confirm=0)
    return root


def _fold_runs(root: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime for p in (root / TRIALS_DIR).glob("*/seed-*/fold-*/metrics.json")}


def test_space_items_parse_to_ranges_and_choices() -> None:
    assert parse_param("train.learning_rate=log:1e-4:1e-2") == Param(
        "train.learning_rate", "float", 1e-4, 1e-2, True
    )
    assert parse_param("train.epochs=int:1:6") == Param("train.epochs", "int", 1, 6)
    assert parse_param("encoder.dropout=0:0.5") == Param("encoder.dropout", "float", 0.0, 0.5)
    assert parse_param("encoder.type=gru,cnn").choices == ("gru", "cnn")
    assert parse_param("encoder.bidirectional=true,false").choices == (True, False)
    assert parse_param("train.epochs=log:int:1:8").spec() == "log:int:1:8"


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("learning_rate=0.1:1", "is not of the form"),
        ("train.learning_rate", "is not of the form"),
        ("train.learning_rate=0.1:x", "is not of the form"),
        ("train.learning_rate=1:0.1", "expected low < high"),
        ("train.learning_rate=log:0:1", "low > 0 on a log scale"),
    ],
)
def test_bad_space_items_are_user_errors(item: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_param(item)


def test_a_key_given_twice_is_refused() -> None:
    with pytest.raises(UserError, match="given twice"):
        parse_space(["train.epochs=int:1:3", "train.epochs=int:2:4"])


def test_default_spaces_follow_the_task_and_encoder() -> None:
    scratch = default_space(load_config(["experiments/configs/article_gru.yaml"]))
    assert set(scratch) == {
        "train.learning_rate",
        "encoder.dropout",
        "embedding.dropout",
        "encoder.units",
        "task.label_smoothing",
    }
    assert scratch["train.learning_rate"].low == pytest.approx(2e-4)
    assert scratch["encoder.units"].choices[0] == 128  # the config's own value first
    retrieval = default_space(load_config(["experiments/configs/retrieval_pretrained.yaml"]))
    assert set(retrieval) == {
        "train.learning_rate",
        "encoder.freeze",
        "train.epochs",
        "task.temperature",
        "task.weight_averaging",
    }
    assert retrieval["encoder.freeze"].choices == ("2", "none", "4")
    assert (retrieval["train.epochs"].low, retrieval["train.epochs"].high) == (1, 4)
    assert retrieval["task.weight_averaging"].choices == (1.0, 0.75, 0.5)
    mpnet = default_space(load_config(["experiments/configs/retrieval_mpnet.yaml"]))
    assert mpnet["task.weight_averaging"].choices == (0.75, 1.0, 0.5)  # the config's own value first
    # From scratch there is no starting encoder to average with; after --init-from there is.
    scratch_retrieval = load_config(["experiments/configs/retrieval_gru.yaml"])
    assert "task.weight_averaging" not in default_space(scratch_retrieval)
    personal = load_config(["experiments/configs/retrieval_gru.yaml"], ["init.source=runs/base"])
    assert default_space(personal)["task.weight_averaging"].choices == (1.0, 0.75, 0.5)


@pytest.mark.large  # slow (20-60 s with its fixture); CI runs it after the default suite (.ci/run)
def test_the_search_sees_only_the_training_and_validation_split(base: Path, study: Path) -> None:
    splits = load_qa_data(load_config([base], FAST)).splits
    pool = pd.read_json(study / POOL_FILE, lines=True)
    assert len(pool) == len(splits.train) + len(splits.validation)
    assert not set(pool["question"]) & set(splits.test["question"])
    tested = set()
    for run in (study / TRIALS_DIR).glob("*/seed-42/fold-*"):
        config = load_config([run / "config.yaml"])
        assert config.data.train == str(study / POOL_FILE)
        tested |= set(pd.read_json(run / "data" / "test.jsonl", lines=True)["question"])
    assert tested == set(pool["question"])  # every fold's held-out questions come from the pool


@pytest.mark.large  # slow (20-60 s with its fixture); CI runs it after the default suite (.ci/run)
def test_the_first_trial_is_the_starting_config_and_the_best_is_written_as_yaml(
    base: Path, study: Path
) -> None:
    report = json.loads((study / TUNE_JSON).read_text())
    trials = report["trials"]
    assert [t["state"] for t in trials] == ["complete"] * 3
    assert trials[0]["values"] == {"train.learning_rate": 0.01}  # TINY's learning rate
    for trial in trials:
        assert len(trial["scores"]) == 2
        assert trial["mean"] == pytest.approx(sum(trial["scores"]) / 2)
        folds = [
            json.loads(p.read_text())["accuracy"]
            for p in sorted((study / TRIALS_DIR / trial["name"]).glob("seed-42/fold-*/metrics.json"))
        ]
        assert folds == pytest.approx(trial["scores"])
    best = max(trials, key=lambda t: t["mean"])
    assert report["best"]["number"] == best["number"]
    chosen = load_config([study / BEST_YAML])
    assert chosen.train.learning_rate == pytest.approx(best["values"]["train.learning_rate"])
    assert chosen.data.train == load_config([base]).data.train  # trains on the user's file, not the pool
    assert chosen.data.folds == 0
    assert "starting config (trial 0)" in (study / BEST_YAML).read_text()
    table = (study / TRIALS_TABLE).read_text()
    assert table.count("\n") == 2 + 3
    assert "**best**" in table


@pytest.mark.large  # slow (20-60 s with its fixture); CI runs it after the default suite (.ci/run)
def test_every_trial_is_an_hparams_session(study: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    sessions = sorted((study / HPARAMS_DIR).iterdir())
    assert len(sessions) == 3
    events = EventAccumulator(str(sessions[0]), size_guidance={"tensors": 0})
    events.Reload()
    assert "cv_accuracy" in events.Tags()["tensors"]
    assert any("hparams" in tag for tag in events.Tags()["tensors"])


@pytest.mark.large  # slow (20-60 s with its fixture); CI runs it after the default suite (.ci/run)
def test_rerunning_resumes_the_study_without_retraining(base: Path, study: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    before = _fold_runs(copy)
    result = tune(
        [base], copy, overrides=FAST, space=SPACE, folds=2, trials=4, budget_seconds=3600, confirm=0
    )
    assert len(result.trials) == 4
    after = _fold_runs(copy)
    assert len(after) == len(before) + 2  # only the new trial's two folds trained
    assert all(after[p] == t for p, t in before.items())


def test_no_trial_starts_without_time_left(base: Path, tmp_path: Path) -> None:
    result = tune(
        [base], tmp_path / "none", overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=1e-3
    )
    assert result.stopped_by == "budget"
    assert result.trials == []
    assert not (tmp_path / "none" / TRIALS_DIR).exists()
    assert not (tmp_path / "none" / BEST_YAML).exists()


def _after_first_fold(monkeypatch: pytest.MonkeyPatch, then: Callable[[], None]) -> None:
    """Calls `then` once the first fold run of the call has finished."""
    import qa_assistant.training.runner as runner

    real = runner.train_run

    def train_run(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        then()
        return result

    monkeypatch.setattr(runner, "train_run", train_run)


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_a_trial_stopped_by_the_budget_is_finished_on_the_next_call(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import qa_assistant.analysis.tune.search as module

    root, late = tmp_path / "budget", [0.0]
    monkeypatch.setattr(module.time, "monotonic", lambda real=time.monotonic: real() + late[0])
    _after_first_fold(monkeypatch, lambda: late.__setitem__(0, 1e6))  # the clock jumps past the budget
    stopped = tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=3600)
    monkeypatch.undo()
    assert stopped.stopped_by == "budget"
    assert stopped.best is None
    assert [t.note for t in stopped.trials] == ["stopped: time budget"]
    assert not (root / BEST_YAML).exists()
    first_fold = _fold_runs(root)
    assert len(first_fold) == 1
    # The jump made that fold look 1e6 s long: the next call needs a budget that fits another.
    resumed = tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=1e7)
    assert resumed.best is not None
    assert resumed.best.values == {"train.learning_rate": 0.01}
    assert len(_fold_runs(root)) == 2
    assert all(_fold_runs(root)[p] == t for p, t in first_fold.items())  # its finished fold was reused
    assert (root / BEST_YAML).exists()


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_a_killed_trial_is_queued_again(base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def kill() -> None:
        raise KeyboardInterrupt

    root = tmp_path / "killed"
    _after_first_fold(monkeypatch, kill)
    with pytest.raises(KeyboardInterrupt):
        tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=3600)
    monkeypatch.undo()
    first_fold = _fold_runs(root)
    resumed = tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=3600)
    assert [(t.state, t.values) for t in resumed.trials] == [
        ("stopped", {"train.learning_rate": 0.01}),  # the killed call's trial, marked as such
        ("complete", {"train.learning_rate": 0.01}),  # and the same values, finished
    ]
    assert all(_fold_runs(root)[p] == t for p, t in first_fold.items())
    assert "starting config (trial 1): " in (root / BEST_YAML).read_text()  # its finished copy


def test_only_a_fold_trained_from_its_start_times_the_next(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import qa_assistant.training.resume as resume
    import qa_assistant.training.runner as runner
    from qa_assistant.analysis.kfold import fold_directory
    from qa_assistant.analysis.tune.search import _Plan, _train_fold

    config = load_config([base], FAST)
    trained: list[Path] = []

    def fake_train_run(config, directory, deadline=None):
        trained.append(directory)
        return SimpleNamespace(already_finished=False, metrics={}, finish_seconds=1.0)

    monkeypatch.setattr(runner, "train_run", fake_train_run)
    saved = {fold_directory(tmp_path, config.train.seed, 0) / "checkpoints"}  # a budget stop after an epoch
    monkeypatch.setattr(resume, "latest_snapshot", lambda directory: object() if directory in saved else None)
    plan = _Plan(config, tmp_path / POOL_FILE, tmp_path, 2, "accuracy", time.monotonic() + 3600, [])
    _train_fold(0, config, tmp_path, (0, 2), plan, seed=config.train.seed)
    assert plan.fold_seconds == []  # its remaining epochs say nothing about a whole fold's time
    _train_fold(0, config, tmp_path, (1, 2), plan, seed=config.train.seed)
    assert len(plan.fold_seconds) == 1
    assert plan.finish_seconds == [1.0]
    assert len(trained) == 2
    # A finished fold (its checkpoints cleared) is reused in no time: that is no fold's time either.
    monkeypatch.setattr(
        runner,
        "train_run",
        lambda *a, **k: SimpleNamespace(already_finished=True, metrics={}, finish_seconds=None),
    )
    _train_fold(0, config, tmp_path, (1, 2), plan, seed=config.train.seed)
    assert len(plan.fold_seconds) == 1


def test_a_fold_stops_training_early_enough_to_leave_its_evaluation_time(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    import qa_assistant.analysis.tune.search as module
    import qa_assistant.training.runner as runner
    from qa_assistant.analysis.tune.search import _Plan, _train_fold

    config = load_config([base], FAST)
    clock, left = [0.0], []  # the budget left at each fold's training deadline

    def fake_train_run(config, directory, deadline=None):
        left.append(deadline - time.time())
        clock[0] += 100.0  # 30 s of it after training
        return SimpleNamespace(already_finished=False, metrics={}, finish_seconds=30.0)

    monkeypatch.setattr(runner, "train_run", fake_train_run)
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    plan = _Plan(config, tmp_path / POOL_FILE, tmp_path, 2, "accuracy", 1000.0, [])
    for fold in range(2):
        _train_fold(0, config, tmp_path, (fold, 2), plan, seed=config.train.seed)
    # The first fold trains up to the budget's end; the second stops 30 s before it.
    assert left == [pytest.approx(1000.0, abs=1.0), pytest.approx(900.0 - 30.0, abs=1.0)]
    assert plan.finish_seconds == [30.0, 30.0]


def test_the_starting_config_is_trial_0_or_its_requeued_copy() -> None:
    from qa_assistant.analysis.tune.outputs import TrialRecord, _starting_record

    def record(number: int, rate: float, state: str) -> TrialRecord:
        values = {"train.learning_rate": rate}
        return TrialRecord(number, str(number), values, state, [0.5], 1.0, "")

    killed, other, copy = record(0, 0.01, "stopped"), record(1, 0.02, "complete"), record(2, 0.01, "complete")
    assert _starting_record([killed, other, copy]) is copy
    assert _starting_record([killed, other]) is killed  # never finished: the header says so
    assert _starting_record([other]) is None


@pytest.mark.large  # slow (20-60 s with its fixture); CI runs it after the default suite (.ci/run)
def test_another_space_in_the_same_directory_is_refused(base: Path, study: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "study"
    shutil.copytree(study, copy)
    other = {"train.learning_rate": parse_param("train.learning_rate=log:0.001:0.1")}
    with pytest.raises(UserError, match="holds a tuning study with another space"):
        tune([base], copy, overrides=FAST, space=other, folds=2, trials=4)


def test_a_monitor_the_model_does_not_report_is_refused_before_any_fold(base: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="val_token_accuracy"):
        tune(
            [base], tmp_path / "study", overrides=[*FAST, "task.type=generate", "train.monitor=val_accuracy"]
        )
    assert not (tmp_path / "study").exists()


def test_durations() -> None:
    assert parse_duration("30m") == 1800
    assert parse_duration("2h") == 7200
    assert parse_duration("90s") == 90
    assert parse_duration("1.5") == 90
    for bad in ("soon", "0m", "-5m", ""):
        with pytest.raises(UserError, match="is not a duration"):
            parse_duration(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--budget", "soon"], "--budget 'soon' is not a duration"),
        (["--confirm", "-1"], "--confirm must be 0 or more; got -1"),
        (["--space", "train.learnin_rate=0.1:1"], "search space train.learnin_rate=0.1:1: "),
        (
            ["--space", "encoder.dropout=0:1.5"],
            "search space encoder.dropout=0:1.5: config key 'encoder.dropout' must be in [0, 1)",
        ),
    ],
)
def test_command_line_errors_are_one_line_and_write_nothing(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    code = main(["tune", "--config", str(base), "--output", str(tmp_path / "out"), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_a_run_stopped_at_its_deadline_is_left_to_resume(base: Path, tmp_path: Path) -> None:
    from qa_assistant.layout import is_finished
    from qa_assistant.training.callbacks import DeadlineError
    from qa_assistant.training.runner import train_run

    config = load_config([base], [*FAST, "train.epochs=3"])
    with pytest.raises(DeadlineError, match="in batch 1"):
        train_run(config, tmp_path / "run", deadline=time.time() - 1)
    assert (tmp_path / "run").is_dir()
    assert not is_finished(tmp_path / "run")
    result = train_run(config, tmp_path / "run")
    assert not result.already_finished
    assert result.metrics["epochs_run"] == 3


@pytest.mark.large  # slow (a whole training, 30-50 s); CI runs it after the default suite (.ci/run)
def test_early_stopping_on_a_tiny_validation_split_points_to_k_fold(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from qa_assistant.training.runner import train_run

    config = load_config(
        [base], [*FAST, "train.epochs=3", "train.early_stopping=2", "train.monitor=val_accuracy"]
    )
    with caplog.at_level("WARNING", logger="qa_assistant.training.runner"):
        train_run(config, tmp_path / "run")
    (message,) = [r.getMessage() for r in caplog.records if "the epoch this run keeps" in r.getMessage()]
    assert "when it stops early" in message
    assert "expected at least 50" in message
    assert "qa-assistant tune --config ... --space train.epochs=int:1:" in message
    assert "--set train.epochs=E train.monitor_from_epoch=E" in message


def test_a_warm_up_as_long_as_training_is_said_to_keep_the_last_epoch(
    base: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from qa_assistant.training.runner import train_run

    overrides = [*FAST, "train.epochs=2", "train.early_stopping=2", "train.monitor_from_epoch=2"]
    with caplog.at_level("INFO", logger="qa_assistant.training.runner"):
        result = train_run(load_config([base], overrides), tmp_path / "run")
    messages = [r.getMessage() for r in caplog.records]
    (message,) = [m for m in messages if "is not below train.epochs 2: the run keeps its last epoch" in m]
    assert "--set train.monitor_from_epoch=0" in message
    assert not [m for m in messages if "the epoch this run keeps" in m]  # nothing is chosen here
    assert result.metrics["best_epoch"] == 0


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
def test_a_failed_trial_is_tried_again_on_the_next_call(base: Path, tmp_path: Path) -> None:
    from qa_assistant.analysis.tune import trial_name

    root = tmp_path / "failed"
    in_the_way = root / TRIALS_DIR / trial_name({"train.learning_rate": 0.01}) / "seed-42" / "fold-0"
    in_the_way.mkdir(parents=True)
    (in_the_way / "notes.txt").write_text("not a run")
    first = tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=1e7)
    # The starting config's trial failed; the search went on to a finished one.
    assert [t.state for t in first.trials] == ["stopped", "complete"]
    assert first.trials[0].note.startswith("failed: output")
    (in_the_way / "notes.txt").unlink()  # the user clears the way
    again = tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=2, budget_seconds=1e7)
    assert (again.trials[-1].state, again.trials[-1].values) == ("complete", {"train.learning_rate": 0.01})


def _scored_without_training(
    monkeypatch: pytest.MonkeyPatch,
    score: Callable[[float, int], float],
    clock: list[float] | None = None,
    deadlines: list[float] | None = None,
) -> list[Path]:
    """`train_run` replaced by `score(learning rate, train.seed)`; each fold advances `clock` by
    100 s, of which 30 s after training; `deadlines` collects the budget left at each fold's
    training deadline.

    Returns the run directories it was asked to train, in order.
    """
    from types import SimpleNamespace

    import qa_assistant.analysis.tune.search as module
    import qa_assistant.training.runner as runner

    trained: list[Path] = []

    def train_run(config: Any, directory: Path, deadline: float | None = None) -> Any:
        trained.append(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if deadlines is not None:
            deadlines.append(deadline - time.time())
        if clock is not None:
            clock[0] += 100.0
        accuracy = score(config.train.learning_rate, config.train.seed)
        return SimpleNamespace(
            run_dir=directory,
            already_finished=False,
            metrics={"accuracy": accuracy, "num_questions": 60},
            finish_seconds=30.0,
        )

    monkeypatch.setattr(runner, "train_run", train_run)
    if clock is not None:
        monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    return trained


def test_a_resumed_study_keeps_the_time_its_folds_spent_after_training(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock, left = [0.0], []
    _scored_without_training(monkeypatch, lambda rate, seed: 0.5, clock, left)
    root = tmp_path / "resumed"
    tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=1, budget_seconds=3600, confirm=0)
    assert left == [pytest.approx(3600.0, abs=1.0), pytest.approx(3500.0 - 30.0, abs=1.0)]
    # A new call reads the first call's mean from the study: its first fold already keeps 30 s.
    tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=2, budget_seconds=3600, confirm=0)
    assert left[2] == pytest.approx(3600.0 - 30.0, abs=1.0)


def _disagreeing(rate: float, seed: int) -> float:
    """The first partition favours a high learning rate; the second, more strongly, a low one."""
    return 0.5 + rate if seed == 42 else 0.5 - 2 * rate


def test_the_search_winner_is_scored_again_and_the_choice_made_on_both_partitions(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = _scored_without_training(monkeypatch, _disagreeing)
    root = tmp_path / "confirm"
    result = tune(
        [base], root, overrides=FAST, space=SPACE, folds=2, trials=4, budget_seconds=3600, confirm=1
    )
    start, *others = result.trials
    winner = max(result.trials, key=lambda t: t.mean)
    assert start.values == {"train.learning_rate": 0.01}
    assert winner is not start  # the sampler drew a higher rate (seeded)
    assert winner.values["train.learning_rate"] > 0.01
    # Both were scored on the second partition; on both partitions together the start wins.
    assert start.second == pytest.approx([0.48, 0.48])
    assert winner.second == pytest.approx([0.5 - 2 * winner.values["train.learning_rate"]] * 2)
    assert [t.second for t in others if t is not winner] == [[]] * 2
    assert result.best is not None
    assert result.best.number == start.number
    assert load_config([root / BEST_YAML]).train.learning_rate == pytest.approx(0.01)
    second = {p.relative_to(root / TRIALS_DIR) for p in trained if p.parent.name == "seed-43"}
    assert second == {Path(t.name, "seed-43", f"fold-{i}") for t in (start, winner) for i in (0, 1)}
    report = json.loads((root / TUNE_JSON).read_text())
    assert report["confirmation"]["candidates"] == [winner.number, start.number]
    assert report["confirmation"]["chosen_on"] == "both partitions"
    header = (root / BEST_YAML).read_text()
    assert f"Chosen among trials {winner.number}, {start.number}" in header
    assert "second partition (train.seed 43)" in header
    assert "2nd partition" in (root / TRIALS_TABLE).read_text()
    # Rerunning finds every score in the study: nothing trains again.
    trained.clear()
    again = tune([base], root, overrides=FAST, space=SPACE, folds=2, trials=4, budget_seconds=3600, confirm=1)
    assert trained == []
    assert again.best is not None
    assert again.best.number == start.number
    # Without the confirmation the search's winner is kept.
    plain = tune(
        [base],
        tmp_path / "plain",
        overrides=FAST,
        space=SPACE,
        folds=2,
        trials=4,
        budget_seconds=3600,
        confirm=0,
    )
    assert plain.best is not None
    assert plain.best.values == winner.values
    assert not (tmp_path / "plain" / TRIALS_DIR / winner.name / "seed-43").exists()


def test_the_search_keeps_time_for_the_confirmation(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    _scored_without_training(monkeypatch, _disagreeing, clock)
    # 100 s per fold, 2 folds per trial; the best trial and the start take 400 s, a third of 1,200.
    result = tune(
        [base], tmp_path / "budget", overrides=FAST, space=SPACE, folds=2, budget_seconds=1200, confirm=3
    )
    assert result.stopped_by == "budget"
    assert [t.state for t in result.trials] == ["complete"] * 4  # the search stopped at 800 s
    confirmed = [t for t in result.trials if t.second]
    assert len(confirmed) == 2
    assert all(t.confirmed for t in confirmed)
    assert clock[0] == 1200.0
    assert result.best is not None
    assert result.best.number == 0
    assert (
        "(1 of --confirm 3: more would take over a third of the budget)"
        in (tmp_path / "budget" / BEST_YAML).read_text()
    )


def test_a_budget_too_short_for_the_check_leaves_the_search_its_time(
    base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    _scored_without_training(monkeypatch, _disagreeing, clock)
    # The best trial and the start would take 400 s: more than a third of 1,000.
    result = tune([base], tmp_path / "short", overrides=FAST, space=SPACE, folds=2, budget_seconds=1000)
    assert [t.state for t in result.trials] == ["complete"] * 5
    assert not any(t.second for t in result.trials)
    assert result.best is not None
    assert result.best is max(result.trials, key=lambda t: t.mean)
    assert "would take over a third of the budget" in (tmp_path / "short" / BEST_YAML).read_text()


def test_a_confirmation_cut_short_leaves_the_choice_to_the_search() -> None:
    from qa_assistant.analysis.tune.outputs import TrialRecord, best_record, confirmation_candidates

    def record(number: int, rate: float, scores: list[float], second: list[float]) -> TrialRecord:
        return TrialRecord(
            number, f"t{number}", {"train.learning_rate": rate}, "complete", scores, 1.0, "", second
        )

    start = record(0, 0.01, [0.70, 0.72], [0.74, 0.74])
    lucky = record(1, 0.03, [0.78, 0.76], [0.66, 0.68])
    third = record(2, 0.02, [0.75, 0.73], [])
    assert confirmation_candidates([start, lucky, third], 1, lower=False) == [lucky, start]
    assert confirmation_candidates([start, lucky, third], 2, lower=False) == [lucky, third, start]
    assert confirmation_candidates([start, lucky, third], 0, lower=False) == []
    assert best_record([start, lucky, third], lower=False, confirm=1) is start  # 0.725 over both vs 0.72
    assert best_record([start, lucky, third], lower=False, confirm=2) is lucky  # the third's is missing
    assert best_record([start, lucky, third], lower=False) is lucky
    alone = record(0, 0.01, [0.70, 0.72], [])
    assert confirmation_candidates([alone], 3, lower=False) == []  # nothing to choose between


@pytest.mark.large  # slow (8 tiny trainings, 30-60 s); CI runs it after the default suite (.ci/run)
def test_the_second_partition_holds_out_other_questions(base: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = tmp_path / "partitions"
    result = tune(
        [base], root, overrides=FAST, space=SPACE, folds=2, trials=2, budget_seconds=3600, confirm=2
    )
    assert all(t.confirmed for t in result.trials)
    for trial in result.trials:
        held_out = {}
        for seed in (42, 43):
            runs = sorted((root / TRIALS_DIR / trial.name / f"seed-{seed}").glob("fold-*"))
            held_out[seed] = [
                set(pd.read_json(r / "data" / "test.jsonl", lines=True)["question"]) for r in runs
            ]
            scores = [json.loads((r / "metrics.json").read_text())["accuracy"] for r in runs]
            assert scores == pytest.approx(trial.scores if seed == 42 else trial.second)
        assert set().union(*held_out[42]) == set().union(*held_out[43])  # the same pool, both times
        assert held_out[42][0] != held_out[43][0]  # cut differently
    # TensorBoard's HParams table shows both partitions' scores beside the search's.
    session = EventAccumulator(str(root / HPARAMS_DIR / result.best.name), size_guidance={"tensors": 0})
    session.Reload()
    assert {"cv_accuracy", "cv_accuracy_second_partition", "cv_accuracy_both_partitions"} <= set(
        session.Tags()["tensors"]
    )


@pytest.mark.parametrize(("ensemble", "suggested"), [(1, True), (2, False)])
def test_the_command_suggests_training_a_tuned_classifier_as_an_ensemble(
    base: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    ensemble: int,
    suggested: bool,
) -> None:
    _scored_without_training(monkeypatch, lambda rate, seed: 0.5 + rate)
    output = tmp_path / "out"
    args = ["--trials", "2", "--confirm", "0", "--folds", "2", "--set", *FAST, f"task.ensemble={ensemble}"]
    assert main(["tune", "--config", str(base), "--output", str(output), *args]) == 0
    (line,) = [line for line in capsys.readouterr().out.splitlines() if line.startswith("train it:")]
    assert line.split(":", 1)[1].strip() == (
        f"qa-assistant train --config {output / BEST_YAML}" + (" --set task.ensemble=3" if suggested else "")
    )


def test_a_kept_epoch_chosen_on_a_tiny_validation_split_is_warned_of_without_early_stopping(
    faq_csv: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Early stopping off still keeps the best epoch: on a handful of validation questions the
    user is told, and how to keep the last epoch instead."""
    from qa_assistant.training.runner import train_run
    from tests.helpers import tiny_config

    config = tiny_config("train.epochs=3", "train.early_stopping=0", train=faq_csv)
    with caplog.at_level("WARNING", logger="qa_assistant.training.runner"):
        train_run(config, tmp_path / "run")
    (message,) = [r.getMessage() for r in caplog.records if "the epoch this run keeps" in r.getMessage()]
    assert "when it stops early" not in message
    assert "train.monitor_from_epoch=E" in message


def test_best_yaml_says_the_check_was_skipped_when_the_start_is_best_too() -> None:
    from qa_assistant.analysis.tune.outputs import TrialRecord, _choice_lines

    start = TrialRecord(0, "trial-0", {}, "complete", [0.8, 0.8], 10.0)
    other = TrialRecord(1, "trial-1", {}, "complete", [0.7, 0.7], 10.0)
    (best_line, skipped) = _choice_lines(start, start, [], False, (0, 3), 43)
    assert best_line.startswith("# Best: trial 0")
    assert "scoring the search's best trials again would take over a third of the budget" in skipped
    assert "the best trial and the starting config" in _choice_lines(other, start, [], False, (0, 3), 43)[1]
    assert _choice_lines(start, start, [], False, (0, 0), 43) == [best_line]  # --confirm 0 asked for no check
