"""The `qa-assistant` command as a user runs it: subprocesses, exit codes, output."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import export_shell

ROOT = Path(__file__).resolve().parents[1]
TINY = ["text.max_length=8", "embedding.dim=8", "encoder.units=8", "train.epochs=3", "train.batch_size=8"]


def cli(*args: str, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qa_assistant", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.large  # about 2.5 min: nine commands, each loading TensorFlow; CI runs it after the default suite (.ci/run)
def test_train_export_ask_evaluate(tmp_path: Path, faq_split_files: tuple[Path, Path]) -> None:
    train, test = faq_split_files
    run = tmp_path / "run"
    done = cli(
        "train",
        "--config",
        str(ROOT / "experiments/configs/article_gru.yaml"),
        "--train-data",
        str(train),
        "--test-data",
        str(test),
        "--output",
        str(run),
        "--set",
        *TINY,
        "--name",
        "mine",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_test"] == 12  # the given test file, as-is
    assert "| gru classify |" in done.stdout
    assert "| TF-IDF baseline |" in done.stdout
    assert (tmp_path / "saved_models" / "mine" / "1" / "saved_model.pb").is_file()

    again = cli(
        "train",
        "--config",
        str(ROOT / "experiments/configs/article_gru.yaml"),
        "--train-data",
        str(train),
        "--test-data",
        str(test),
        "--output",
        str(run),
        "--set",
        *TINY,
        cwd=tmp_path,
    )
    assert again.returncode == 0
    assert "not retraining" in again.stderr

    exported = cli("export", "--run", str(run), "--name", "mine", cwd=tmp_path)
    assert exported.returncode == 0
    assert exported.stdout.strip().endswith(str(Path("saved_models/mine/2")))

    asked = cli(
        "ask", "--model", "saved_models/mine", "--json", "--top-k", "2", "what is your price?", cwd=tmp_path
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = json.loads(asked.stdout)
    assert answer["question"] == "what is your price?"
    assert len(answer["top_k"]) == 2

    plain = cli("ask", "--model", "saved_models/mine/1", "hello", cwd=tmp_path)
    assert plain.returncode == 0
    assert plain.stdout.strip()

    for model in (str(run), "saved_models/mine"):
        evaluated = cli("evaluate", "--model", model, "--data", str(test), "--json", cwd=tmp_path)
        assert evaluated.returncode == 0, evaluated.stderr[-3000:]
        assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(metrics["accuracy"])

    chat = subprocess.run(
        [sys.executable, "-m", "qa_assistant", "chat", "--model", "saved_models/mine"],
        input="what is your price?\n\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert chat.returncode == 0
    # Piped questions appear beside their prompt, each answer on its own line.
    assert "you> what is your price?\nassistant> " in chat.stdout
    # A decoding option this export cannot take is refused before the chat starts.
    refused = cli("chat", "--model", "saved_models/mine", "--decoding", "strategy=beam", cwd=tmp_path)
    assert_user_error(refused, "takes no decoding options (strategy)")
    assert "you>" not in refused.stdout


def test_user_mistakes_are_reported_before_tensorflow_loads(tmp_path: Path) -> None:
    (tmp_path / "qa.csv").write_text("q,a\nx,y\n")
    (tmp_path / "good.csv").write_text("question,answer\nx,y\n")
    for name, task in (("gen", "generate"), ("cls", "classify")):
        export_shell(tmp_path / "saved_models" / name / "1", f"task:\n  type: {task}\n")
    probe = (
        "import sys; from qa_assistant.cli import main; code = main(sys.argv[1:]); "
        "print('tensorflow loaded' if 'tensorflow' in sys.modules else 'no tensorflow'); sys.exit(code)"
    )
    cases = [
        (["train", "--train-data", "missing.csv"], "'missing.csv' does not exist"),
        (
            ["train", "--train-data", "builtin:faq"],
            "unknown builtin data set 'faq'; expected one of: chatterbot",
        ),
        (["train", "--train-data", "good.csv", "--test-data", "gone.jsonl"], "'gone.jsonl' does not exist"),
        (["train", "--train-data", "qa.csv", "--set", "data.question_column=q"], "no column 'answer'"),
        (["tune", "--train-data", "qa.csv"], "no columns 'question', 'answer'"),
        (["train", "--train-data", "good.csv", "--set", "encoder.type=gur"], "did you mean 'gru'?"),
        (
            ["train", "--train-data", "good.csv", "--repeats", "3"],
            "--repeats 3 repeats k-fold cross-validation",
        ),
        (
            ["train", "--train-data", "good.csv", "--folds", "3", "--repeats", "0"],
            "--repeats must be at least 1",
        ),
        (
            ["train", "--train-data", "good.csv", "--set", "task.type=classify", "data.target=topic"],
            "no column 'topic'; columns found: 'question', 'answer'; set data.target to one of the columns",
        ),
        (
            [
                "train",
                "--train-data",
                "good.csv",
                "--set",
                "encoder.type=pretrained",
                "encoder.preset=package:no_such_model",
            ],
            "no installed package 'no_such_model'",
        ),
        (
            [
                "train",
                "--config",
                str(ROOT / "experiments/configs/lm_smollm2_lora.yaml"),
                "--train-data",
                "good.csv",
                "--set",
                "lm.grounding=tfdif",
            ],
            "lm.grounding 'tfdif' is not a directory; expected none, tfidf or a retrieval run directory",
        ),
        (
            [
                "tune",
                "--config",
                str(ROOT / "experiments/configs/lm_smollm2_lora.yaml"),
                "--train-data",
                "good.csv",
                "--set",
                "lm.preset=package:llm-nothere",
            ],
            "no installed package 'llm-nothere'",
        ),
        (
            ["ask", "--model", "saved_models/gen", "--decoding", "temprature=0.5", "hi"],
            "unknown decoding option(s) temprature (did you mean 'temperature'?)",
        ),
        (["ask", "--model", "saved_models/gen", "--decoding", "beam_width=0", "hi"], "beam_width"),
        (
            ["chat", "--model", "saved_models/cls", "--decoding", "strategy=beam"],
            "takes no decoding options (strategy); only a generation export does",
        ),
        (["chat", "--model", "saved_models/gen", "--top-k", "0"], "--top-k must be at least 1"),
    ]
    for args, fragment in cases:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                probe,
                *args,
                *(["--output", "out"] if args[0] in ("train", "tune") else []),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr[-3000:]
        assert fragment in done.stderr
        assert done.stdout.strip() == "no tensorflow"
    assert not (tmp_path / "out").exists()


def test_user_errors_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    (tmp_path / "onecol.csv").write_text("q,a\nx,y\n")
    out = tmp_path / "run"
    cases = [
        (["train", "--train-data", "missing.csv", "--output", str(out)], ["missing.csv", "does not exist"]),
        (
            ["train", "--train-data", "onecol.csv", "--output", str(out)],
            ["no columns 'question', 'answer'", "columns found"],
        ),
        (
            ["train", "--output", str(out), "--set", "encoder.type=gur"],
            ["config key 'encoder.type' got 'gur'", "gru, lstm"],
        ),
        (["train", "--output", str(out), "--set", "encoder.nope=1"], ["unknown config key 'encoder.nope'"]),
        (["train", "--output", str(out), "--name", "../evil"], ["model name '../evil' is not allowed"]),
        (["ask", "--model", str(tmp_path), "hi"], ["is not an exported model"]),
        (
            ["index", "--model", str(tmp_path), "--answers", "onecol.csv", "--name", "x"],
            ["is not an exported model"],
        ),
        (
            ["export", "--run", str(tmp_path), "--name", "x"],
            ["is not a finished run directory", "model.keras, or a language model's adapter.lora.h5"],
        ),
        (["export", "--run", str(tmp_path / "nothere"), "--name", "x"], ["nothere' does not exist"]),
        (
            ["evaluate", "--model", str(tmp_path / "nothere"), "--data", "onecol.csv"],
            ["is neither a trained run directory nor an exported model", "expected RUN_DIR"],
        ),
    ]
    for args, fragments in cases:
        assert_user_error(cli(*args, cwd=tmp_path), *fragments)
    assert not out.exists()
    assert not (tmp_path / "saved_models").exists()


def test_evaluate_prints_numbers_in_the_table_and_text_facts_under_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import qa_assistant.serving.evaluate as evaluate
    from qa_assistant.cli import commands

    facts = {"bleu": 0.25, "num_examples": 3, "bleu_signature": "nrefs:1|case:mixed|tok:13a"}
    monkeypatch.setattr(evaluate, "evaluate_path", lambda model, data: facts)
    args = argparse.Namespace(model="saved_models/writer", data="test.jsonl", json=False)
    assert commands.evaluate_command(args) == 0
    table, _, row, signature = capsys.readouterr().out.strip().splitlines()
    assert table == "| model | bleu | num_examples |"
    assert row == "| saved_models/writer | 0.250 | 3 |"
    assert signature == "bleu_signature: nrefs:1|case:mixed|tok:13a"


def test_ask_says_when_the_export_returns_fewer_answers_than_top_k(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    from types import SimpleNamespace

    import qa_assistant.serving as serving
    from qa_assistant.cli import commands

    class TwoAnswers:  # an export whose export.top_k is 2
        def __init__(self, path: str) -> None:
            pass

        def ask_many(self, questions, top_k=None, decoding=None):
            pairs = [("Nine to five.", 0.9), ("Weekdays.", 0.5)]
            return [
                SimpleNamespace(answer=pairs[0][0], alternatives=pairs[:top_k], extra={}) for _ in questions
            ]

    monkeypatch.setattr(serving, "Assistant", TwoAnswers)
    for top_k, warned in ((5, True), (2, False), (None, False)):
        caplog.clear()
        args = argparse.Namespace(model="m", top_k=top_k, decoding=[], json=False, questions=["when?"])
        with caplog.at_level("WARNING", logger=commands.__name__):
            assert commands.ask_command(args) == 0
        messages = [r.getMessage() for r in caplog.records]
        assert messages == (
            [
                "--top-k 5: the export returned 2 answers per question at most (its export.top_k, "
                "or all its bank, classes or beams)"
            ]
            if warned
            else []
        )
    assert "Nine to five." in capsys.readouterr().out


def test_an_unknown_option_is_shown_with_its_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    from qa_assistant.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["index", "--model", "m", "--answers", "a.csv", "--name", "n", "--set", "data.x=1"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: qa-assistant index ")
    assert "qa-assistant index: error: unrecognized arguments: --set data.x=1" in err


def test_two_runs_of_one_config_started_in_the_same_second_get_two_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime

    from qa_assistant.cli import commands

    class Frozen(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls(2026, 12, 3, 19, 0, 0)

    monkeypatch.setattr(commands.datetime, "datetime", Frozen)
    monkeypatch.chdir(tmp_path)
    first = commands._default_output(["experiments/configs/article_gru.yaml"])
    assert first == str(Path("runs") / "article_gru-20261203-190000")
    Path(first).mkdir(parents=True)
    assert commands._default_output(["article_gru.yaml"]) == first + "-2"


def test_train_with_a_name_again_keeps_the_finished_runs_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    from qa_assistant.cli import main
    from tests.helpers import faq_rows

    pd.DataFrame(faq_rows()).to_csv(tmp_path / "faq.csv", index=False)
    (tmp_path / "elsewhere").mkdir()
    train = ["train", "--name", "me", "--set", *TINY]
    monkeypatch.chdir(tmp_path)
    assert main([*train, "--train-data", "faq.csv", "--output", "runs/me"]) == 0
    assert f"exported:        {Path('saved_models/me/1')}\n" in capsys.readouterr().out
    # The same finished run, named from another directory: its export stands.
    monkeypatch.chdir(tmp_path / "elsewhere")
    again = [
        *train,
        "--train-data",
        "../faq.csv",
        "--output",
        "../runs/me",
        "--saved-models",
        "../saved_models",
    ]
    assert main(again) == 0
    assert "(this run's export already; no new version)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "saved_models" / "me").iterdir()) == ["1"]
    # Trained again: a new version.
    assert main([*again, "--restart"]) == 0
    assert sorted(p.name for p in (tmp_path / "saved_models" / "me").iterdir()) == ["1", "2"]


def test_a_multi_line_alternative_keeps_its_lines_under_its_rank(capsys: pytest.CaptureFixture[str]) -> None:
    from types import SimpleNamespace

    from qa_assistant.cli.commands import _print_answer

    code = "Here's quicksort:\n```\ndef quicksort(arr):\n    return arr\n```"
    answer = SimpleNamespace(
        answer=code, extra={"matched_question": "quicksort?"}, alternatives=[(code, 0.9)]
    )
    _print_answer(answer, top_k=1)
    lines = capsys.readouterr().out.splitlines()
    assert lines[5:] == [
        "  1. [0.900] Here's quicksort:",
        "             ```",
        "             def quicksort(arr):",
        "                 return arr",
        "             ```",
        "  closest known question: quicksort?",
    ]
