"""The retrieval task end to end on a tiny FAQ: train -> evaluate -> export -> reload -> index -> answer."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.serving import Assistant, export_run
from qa_assistant.serving.index import index_answers
from qa_assistant.training.evaluate import evaluate_path
from qa_assistant.training.runner import load_run, train_run
from tests.helpers import TOPICS, faq_rows, tiny_config, tiny_preset

OUTPUTS = {"answer", "score", "top_k_answers", "top_k_scores", "matched_question", "matched_question_score"}

# Loads each export given on the command line with TensorFlow (+ tensorflow-text) only.
RELOAD = (
    "import json, sys, tensorflow as tf, tensorflow_text\n"
    "for path in sys.argv[1:]:\n"
    "    m = tf.saved_model.load(path)\n"
    "    out = m.signatures['serving_default'](question=tf.constant(['what is your price?', '']))\n"
    "    emb = m.signatures['embed_answers'](text=tf.constant(['A basic plan costs 10 euros per month.']))\n"
    "    print(json.dumps({'outputs': sorted(out), 'answer': [a.decode() for a in out['answer'].numpy()],\n"
    "        'top': [a.decode() for a in out['top_k_answers'].numpy()[0]],\n"
    "        'embedding': emb['embedding'].numpy().shape[1], 'bank': len(m.bank[0].numpy())}))\n"
)


def reload_in_fresh_process(*versions: Path) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, *map(str, versions)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.strip().splitlines()[-len(versions) :]]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("retrieve")
    data = root / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=8)).to_csv(data, index=False)
    config = tiny_config(
        "task.type=retrieve",
        "train.epochs=20",
        "train.jit_compile=false",  # XLA compiles each bucket shape: slower than training these tiny models
        "text.answer_max_length=12",
        "encoder.bidirectional=true",
        train=data,
    )
    return train_run(config, root / "run").run_dir


@pytest.fixture(scope="module")
def exported(trained: Path) -> Path:
    return export_run(trained, "faq", trained.parent / "saved_models")


def test_run_directory_and_metrics(trained: Path) -> None:
    for name in (
        "answers.json",
        "known_questions.jsonl",
        "retrieval.json",
        "model.keras",
        "predictions.jsonl",
    ):
        assert (trained / name).is_file(), name
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in (
        "recall_at_1",
        "recall_at_5",
        "recall_at_10",
        "mrr",
        "accuracy",
        "baseline_recall_at_1",
        "threshold",
    ):
        assert isinstance(metrics[key], float), key
    assert metrics["accuracy"] == metrics["recall_at_1"]
    assert metrics["recall_at_1"] > 1 / 6  # better than chance over 6 answers


def test_bank_holds_every_answer_of_every_split(trained: Path) -> None:
    bank = json.loads((trained / "answers.json").read_text())
    splits = [
        pd.read_json(trained / "data" / f"{s}.jsonl", lines=True) for s in ("train", "validation", "test")
    ]
    assert set(bank) == set(pd.concat(splits)["answer"]) == set(TOPICS)


def test_reloaded_run_predicts_like_the_saved_predictions(trained: Path) -> None:
    _, task, model = load_run(trained)
    predictions = pd.read_json(trained / "predictions.jsonl", lines=True)
    task.threshold = None  # compare the ranking, not the fallback
    out = task.predict(model, predictions["question"].tolist(), top_k=3)
    assert [a.decode() for a in out["answer"]] == predictions["predicted"].tolist()
    assert np.allclose(out["score"], predictions["score"], atol=1e-4)


def test_fallback_below_the_threshold(trained: Path) -> None:
    _, task, model = load_run(trained)
    task.threshold = 1.5  # above any cosine similarity
    out = task.predict(model, ["what is your price?"], top_k=3)
    assert out["answer"][0].decode() == "I don't know."
    assert out["top_k_answers"][0, 0].decode() in TOPICS  # the ranking is still there


def test_export_and_index_answer_in_a_fresh_tensorflow_only_process(exported: Path, tmp_path: Path) -> None:
    answer = Assistant(exported).ask("what is your price?", top_k=3)
    questions = {row["question"] for row in faq_rows(per_answer=8)}
    assert answer.extra["matched_question"] in questions | {""}
    new = tmp_path / "new.csv"
    pd.DataFrame(
        {"question": ["when is lunch?", ""], "answer": ["Lunch is at noon.", "Parking is free."]}
    ).to_csv(new, index=False)
    result = index_answers(exported.parent, str(new), "grown", tmp_path)
    assert result.version_dir == tmp_path / "grown" / "1"
    assert (result.added_answers, result.added_questions, result.bank_size) == (2, 1, len(TOPICS) + 2)
    assert (
        json.loads((result.version_dir / "assets.extra" / "index.json").read_text())[0]["added_answers"] == 2
    )
    before, after = reload_in_fresh_process(exported, result.version_dir)
    assert set(before["outputs"]) == set(after["outputs"]) == OUTPUTS
    assert before["answer"][0] == answer.answer
    assert set(before["top"]) <= set(TOPICS)
    assert (before["bank"], after["bank"]) == (len(TOPICS), len(TOPICS) + 2)
    bot = Assistant(tmp_path / "grown")
    for text in ("Lunch is at noon.", "Parking is free."):
        assert bot.ask(text, top_k=1).alternatives[0][0] == text  # its own text matches it best
    assert bot.ask("Lunch is at noon.").extra["matched_question"] == "when is lunch?"
    with pytest.raises(UserError, match="adds nothing"):
        index_answers(tmp_path / "grown", str(new), "grown", tmp_path)


def test_index_from_the_command_line(exported: Path, tmp_path: Path) -> None:
    (tmp_path / "new.csv").write_text("question,answer\nwhen is lunch?,Lunch is at noon.\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qa_assistant",
            "index",
            "--model",
            str(exported.parent),
            "--answers",
            "new.csv",
            "--name",
            "faq",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "added 1 answers and 1 questions" in done.stdout
    assert done.stdout.strip().endswith(str(Path("saved_models") / "faq" / "1"))
    answer = Assistant(tmp_path / "saved_models" / "faq").ask("Lunch is at noon.", top_k=1)
    assert answer.alternatives[0][0] == "Lunch is at noon."
    assert answer.extra["matched_question"] == "when is lunch?"


def test_index_refuses_an_export_without_a_bank(tmp_path: Path) -> None:
    module = tf.Module()
    module.f = tf.function(
        lambda question: {"answer": question}, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    tf.saved_model.save(module, str(tmp_path / "plain" / "1"), signatures={"serving_default": module.f})
    (tmp_path / "new.csv").write_text("question,answer\nq,a\n")
    with pytest.raises(UserError, match="is not a retrieval export"):
        index_answers(tmp_path / "plain", str(tmp_path / "new.csv"), "x", tmp_path)


def test_evaluate_run_and_export(trained: Path, exported: Path) -> None:
    data = str(trained / "data" / "test.jsonl")
    from_run = evaluate_path(trained, data)
    from_export = evaluate_path(exported, data)
    assert from_run["recall_at_1"] == pytest.approx(from_export["recall_at_1"])
    assert from_export["accuracy"] == from_export["recall_at_1"]
    assert 0.0 <= from_export["answered_fraction"] <= 1.0


def test_transformer_wordpiece_and_pretrained_variants_export(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    preset = tiny_preset(tmp_path / "preset")
    variants = {
        "transformer": [
            "encoder.type=transformer",
            "encoder.heads=2",
            "encoder.intermediate_dim=16",
            "encoder.max_positions=12",
            "text.tokenizer=wordpiece",
            "text.max_tokens=60",
            "task.loss=sigmoid",
            "task.shared_towers=false",
        ],
        "pretrained": ["encoder.type=pretrained", f"encoder.preset={preset}", "encoder.freeze=1"],
    }
    versions = []
    for name, overrides in variants.items():
        config = tiny_config(
            "task.type=retrieve",
            "text.answer_max_length=12",
            "train.epochs=1",
            "train.jit_compile=false",
            *overrides,
            train=data,
        )
        run = train_run(config, tmp_path / name).run_dir
        assert json.loads((run / "metrics.json").read_text())["num_test"] > 0
        versions.append(export_run(run, name, tmp_path / "saved_models"))
    for out in reload_in_fresh_process(*versions):
        assert set(out["outputs"]) == OUTPUTS
        assert out["bank"] == len(TOPICS)
        assert out["embedding"] == 8
