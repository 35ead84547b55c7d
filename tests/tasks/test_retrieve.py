"""The retrieval task end to end on a tiny FAQ: train -> evaluate -> export -> reload -> index -> answer."""

import dataclasses
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
import yaml

from qa_assistant.config import load_config
from qa_assistant.data.split import Splits
from qa_assistant.errors import UserError
from qa_assistant.serving import Assistant, export_run
from qa_assistant.serving.evaluate import evaluate_path
from qa_assistant.serving.index import index_answers
from qa_assistant.serving.warmup import WARMUP_FILE, read_warmup
from qa_assistant.tasks.retrieval.bank import BANK_COLLECTION, BANK_FIELDS
from qa_assistant.tasks.retrieval.bank import OUTPUTS as SEARCH_OUTPUTS
from qa_assistant.tasks.runs import load_run
from qa_assistant.training import runner
from qa_assistant.training.runner import RunResult, train_run
from tests.helpers import (
    MPNET_SIZES,
    TOPICS,
    faq_rows,
    faq_words,
    run_with_top_k,
    split_with_a_second_answer,
    tiny_config,
    tiny_hf_mpnet_checkpoint,
    tiny_preset,
)

OUTPUTS = set(SEARCH_OUTPUTS)  # every export test checks the outputs it serves against them

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
        "encoder.bidirectional=true",  # text.answer_max_length is left to the data
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
        "mrr_at_10",
        "accuracy",
        "baseline_recall_at_1",
        "baseline_mrr_at_10",
        "coverage",
        "selective_accuracy",
        "aurc",
    ):
        assert isinstance(metrics[key], float), key
    assert metrics["accuracy"] == metrics["recall_at_1"]
    # Keras' per-epoch accuracy ranks a batch's answers only: its name says so, beside the bank's recall@1.
    assert 0.0 <= metrics["best_val_in_batch_accuracy"] <= 1.0
    assert "best_val_accuracy" not in metrics
    # Chance is 1/6; this model reaches 0.6 here, a random one would pass 0.5 about once in 70.
    assert metrics["recall_at_1"] >= 0.5
    predictions = pd.read_json(trained / "predictions.jsonl", lines=True)
    assert metrics["num_questions"] == len(predictions) == predictions["question"].nunique()
    assert metrics["mrr_at_10"] == metrics["mrr"]  # 6 answers: every rank is within 10
    # A few validation questions calibrate no threshold: every test question is answered.
    assert metrics["threshold"] is None
    assert metrics["coverage"] == 1.0
    assert metrics["selective_accuracy"] == metrics["accuracy"]
    assert 0.0 <= metrics["aurc"] <= 1.0
    reason = json.loads((trained / "retrieval.json").read_text())["reason"]
    assert "task.threshold_min_questions" in reason


def run_splits(run: Path) -> Splits:
    frames = {
        s: pd.read_json(run / "data" / f"{s}.jsonl", lines=True) for s in ("train", "validation", "test")
    }
    return Splits(**frames, method="saved")


def test_too_few_validation_questions_apply_no_threshold_and_log_why(
    trained: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, task, model = load_run(trained)
    splits = run_splits(trained)
    assert 0 < len(splits.validation) < task.config.task.threshold_min_questions
    with caplog.at_level(logging.INFO, logger="qa_assistant.tasks.retrieval.task"):
        task.finalize(model, splits)
    assert task.threshold is None
    lines = [r.getMessage() for r in caplog.records if "no fallback threshold" in r.getMessage()]
    assert len(lines) == 1
    assert f"{len(splits.validation)} validation questions" in lines[0]


def test_a_calibrated_threshold_keeps_the_answered_at_least_as_accurate(trained: Path) -> None:
    _, task, model = load_run(trained)
    splits = run_splits(trained)
    # Calibrate on the training questions, enough of them for the rule to apply.
    splits = dataclasses.replace(splits, validation=splits.train)
    task.config = dataclasses.replace(
        task.config, task=dataclasses.replace(task.config.task, threshold_min_questions=len(splits.train))
    )
    task.finalize(model, splits)
    metrics, _ = task.evaluate(model, splits.train)
    if task.threshold is None:
        assert (
            "would not raise" in task.calibration["reason"]
            or "does not separate" in task.calibration["reason"]
        )
    else:
        assert metrics["threshold"] == task.threshold
        assert metrics["selective_accuracy"] >= metrics["accuracy"]
        assert metrics["coverage"] == task.calibration["validation_answered_fraction"]


def test_decline_keep_falls_back_on_requests_below_the_in_domain_threshold(trained: Path) -> None:
    from qa_assistant.tasks.retrieval.bank import conformal_threshold

    _, task, model = load_run(trained)
    splits = run_splits(trained)
    splits = dataclasses.replace(splits, validation=splits.train)  # enough questions for keep 0.8
    task.config = dataclasses.replace(
        task.config, task=dataclasses.replace(task.config.task, decline_keep=0.8)
    )
    task.finalize(model, splits)
    _, _, scored = task.rank(model, splits.train)
    choice = conformal_threshold(scored.score, 0.8)
    # Too few questions for the right-or-wrong calibration (100): the off-topic threshold alone.
    assert task.threshold == choice.threshold is not None
    assert "falls back on off-topic requests" in task.calibration["reason"]
    assert "task.threshold_min_questions" in task.calibration["reason"]
    questions = sorted(set(splits.train["question"]))
    answers = task.predict(model, questions, top_k=1)
    below = answers["score"] < task.threshold
    # The calibration questions under the k-th lowest (the k-th itself, scored again in the
    # graph, may land a last bit below).
    assert choice.rank - 1 <= int(below.sum()) <= choice.rank
    assert (answers["answer"][below] == b"I don't know.").all()
    assert (answers["answer"][~below] != b"I don't know.").all()
    np.testing.assert_array_equal(answers["answered"], ~below)  # the export says which it withheld
    assert (answers["matched_question"][below] == b"").all()
    # Too few questions for the share asked: the calibration stands alone, and says why.
    task.config = dataclasses.replace(
        task.config, task=dataclasses.replace(task.config.task, decline_keep=0.999)
    )
    task.finalize(model, splits)
    assert task.threshold is None
    assert "task.decline_keep 0.999" in task.calibration["reason"]
    assert "cannot promise that share (at least 999 needed)" in task.calibration["reason"]
    task.config = dataclasses.replace(
        task.config, task=dataclasses.replace(task.config.task, decline_keep=1.0)
    )
    task.finalize(model, splits)
    assert task.calibration["reason"].endswith("task.decline_keep 1.0: answers every request")
    # A threshold set by hand is not calibrated: the reason says the key does not apply.
    task.config = dataclasses.replace(
        task.config, task=dataclasses.replace(task.config.task, decline_keep=0.8, threshold=0.5)
    )
    task.finalize(model, splits)
    assert task.threshold == 0.5
    assert "task.decline_keep applies to a calibrated threshold only" in task.calibration["reason"]


def test_answer_max_length_comes_from_the_data_into_the_config_and_the_export(
    trained: Path, exported: Path
) -> None:
    config, task, _ = load_run(trained)
    length = config.text.answer_max_length
    train = pd.read_json(trained / "data" / "train.jsonl", lines=True)
    answers = sorted(set(train["answer"]))
    counter = task.tokenizer.__class__.from_config({**task.tokenizer.get_config(), "max_length": 256})
    counts = counter.tokenize(counter.clean(tf.constant(answers))).row_lengths().numpy()
    # The word tokenizer's answers are longer than text.max_length (8): the percentile decides.
    assert length == int(np.percentile(counts, 95, method="higher")) > config.text.max_length
    assert task.answer_tokenizer.max_length == length
    saved = yaml.safe_load((exported / "assets.extra" / "config.yaml").read_text())
    assert saved["text"]["answer_max_length"] == length


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


def test_an_export_embeds_the_answer_bank_once(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa_assistant.tasks.retrieval.task import RetrievalTask

    embedded: list[int] = []
    embed = RetrievalTask.embed_answers

    def counting(self: RetrievalTask, model: Any, answers: list[str]) -> np.ndarray:
        embedded.append(len(answers))
        return embed(self, model, answers)

    monkeypatch.setattr(RetrievalTask, "embed_answers", counting)
    export_run(trained, "once", tmp_path / "saved_models")  # its parity check still passes
    assert embedded == [len(json.loads((trained / "answers.json").read_text()))]


def test_fallback_below_the_threshold(trained: Path) -> None:
    _, task, model = load_run(trained)
    task.threshold = 1.5  # above any cosine similarity
    out = task.predict(model, ["what is your price?"], top_k=3)
    assert out["answer"][0].decode() == "I don't know."
    assert out["top_k_answers"][0, 0].decode() in TOPICS  # the ranking is still there


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
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
    warmup = read_warmup(result.version_dir / "assets.extra" / WARMUP_FILE)
    assert {r.model_name for r in warmup} == {"grown"}  # served under its new name
    before, after = reload_in_fresh_process(exported, result.version_dir)
    assert set(before["outputs"]) == set(after["outputs"]) == OUTPUTS
    assert before["answer"][0] == answer.answer
    assert set(before["top"]) <= set(TOPICS)
    assert (before["bank"], after["bank"]) == (len(TOPICS), len(TOPICS) + 2)
    bot = Assistant(tmp_path / "grown")
    bank = dict(zip(BANK_FIELDS, bot.tracked(BANK_COLLECTION), strict=True))
    answers = [a.decode() for a in bank["answers"].numpy()]
    for text in ("Lunch is at noon.", "Parking is free."):
        # Embedded by the export's own (shared) tower: as the same text asked as a question.
        asked = bot.signature("embed_questions")(text=tf.constant([text]))["embedding"].numpy()[0]
        np.testing.assert_allclose(bank["embeddings"].numpy()[answers.index(text)], asked, atol=1e-5)
        assert text not in [a for a, _ in bot.ask(text, top_k=3).alternatives]  # never answered with itself
    assert _known_questions_of(bot, "Lunch is at noon.") == ["when is lunch?"]
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
    bot = Assistant(tmp_path / "saved_models" / "faq")
    assert _known_questions_of(bot, "Lunch is at noon.") == ["when is lunch?"]


def _known_questions_of(bot: Assistant, answer: str) -> list[str]:
    """The known questions that a retrieval export's bank holds for `answer`."""
    bank = dict(zip(BANK_FIELDS, bot.tracked(BANK_COLLECTION), strict=True))
    index = [a.decode() for a in bank["answers"].numpy()].index(answer)
    known = zip(bank["known_questions"].numpy(), bank["known_answer_ids"].numpy(), strict=True)
    return [q.decode() for q, i in known if i == index]


def test_index_of_a_file_with_other_columns_says_to_rename_them(exported: Path, tmp_path: Path) -> None:
    # `index` takes no --set, so the fix for other column names is renaming them.
    (tmp_path / "other.tsv").write_text("prompt\treply\nwhen is lunch?\tLunch is at noon.\n")
    with pytest.raises(UserError) as error:
        index_answers(exported.parent, str(tmp_path / "other.tsv"), "faq", tmp_path)
    message = str(error.value)
    assert "has the columns 'prompt', 'reply'; expected 'question', 'answer'" in message
    assert message.endswith("rename the file's columns")
    assert "data.question_column" not in message
    assert not (tmp_path / "faq").exists()


def test_index_refuses_an_export_without_a_bank(tmp_path: Path) -> None:
    module = tf.Module()
    module.f = tf.function(
        lambda question: {"answer": question}, input_signature=[tf.TensorSpec([None], tf.string)]
    )
    tf.saved_model.save(module, str(tmp_path / "plain" / "1"), signatures={"serving_default": module.f})
    (tmp_path / "new.csv").write_text("question,answer\nq,a\n")
    with pytest.raises(UserError, match="is not a retrieval export"):
        index_answers(tmp_path / "plain", str(tmp_path / "new.csv"), "x", tmp_path)


def test_an_unfinished_run_with_answer_max_length_from_the_data_resumes(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "metrics.json").unlink()
    saved = load_config([run / "config.yaml"])
    command = dataclasses.replace(saved, text=dataclasses.replace(saved.text, answer_max_length=None))

    def resumed(task: Any, data: Any, run_dir: Path, placement: Any, deadline: Any = None) -> RunResult:
        return RunResult(run_dir, {"answer_max_length": task.config.text.answer_max_length})

    # Only the check that the command's config is the unfinished run's, not the training.
    monkeypatch.setattr(runner, "_train_and_evaluate", resumed)
    result = train_run(command, run)
    assert result.metrics["answer_max_length"] == saved.text.answer_max_length
    assert load_config([run / "config.yaml"]) == saved


def test_evaluate_warns_of_answers_outside_an_exports_bank(
    trained: Path, exported: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.read_json(trained / "data" / "test.jsonl", lines=True)
    frame.loc[0, "answer"] = "An answer the bank does not hold."
    frame.to_json(tmp_path / "new.jsonl", orient="records", lines=True)
    with caplog.at_level("WARNING", logger="qa_assistant.serving.evaluate"):
        evaluate_path(exported, str(tmp_path / "new.jsonl"))
        evaluate_path(exported, str(trained / "data" / "test.jsonl"))
    warned = [r.getMessage() for r in caplog.records if "not in the export's bank" in r.getMessage()]
    assert len(warned) == 1  # the first file only
    assert warned[0].startswith(f"1 of {len(frame)} examples in ")
    assert "qa-assistant index --model" in warned[0]


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_evaluate_run_and_export(trained: Path, exported: Path, tmp_path: Path) -> None:
    # One test question asked twice with two answers: scored once, a hit on either counts.
    data = str(split_with_a_second_answer(trained, tmp_path / "test.jsonl"))
    from_run = evaluate_path(trained, data)
    assert from_run["num_questions"] == from_run["num_examples"] - 1
    assert {"mrr", "mrr_at_10", "recall_at_10"} <= set(from_run)
    # The fixture's export returns 3 of the 6 answers: only what 3 answers show, named so.
    from_export = evaluate_path(exported, data)
    assert from_export["num_questions"] == from_run["num_questions"]
    assert not {"mrr", "mrr_at_10", "recall_at_5", "recall_at_10"} & set(from_export)
    assert from_export["recall_at_1"] == from_run["recall_at_1"]
    assert from_export["accuracy"] == from_export["recall_at_1"]
    for key in ("coverage", "selective_accuracy", "aurc"):
        assert from_run[key] == pytest.approx(from_export[key], abs=1e-6), key
    # With top_k = 10 it returns the whole bank: the same ranking, the same numbers.
    whole = run_with_top_k(trained, 10, tmp_path / "top10")
    from_whole = evaluate_path(export_run(whole, "top10", tmp_path / "saved_models"), data)
    for key in ("mrr", "mrr_at_10", "recall_at_1", "recall_at_5", "recall_at_10"):
        assert from_whole[key] == from_run[key], key
    assert from_export["mrr_at_3"] == pytest.approx(
        np.mean([1 / r if r <= 3 else 0.0 for r in _ranks(trained, data)])
    )


def _ranks(run: Path, data: str) -> list[float]:
    """Each distinct question's best rank, from the run's own evaluation of `data` (cleaned JSONL)."""
    _, task, model = load_run(run)
    _, predictions = task.evaluate(model, pd.read_json(data, lines=True, dtype=False))
    return predictions["rank"].astype(float).fillna(np.inf).tolist()  # null: not ranked


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_evaluate_run_and_export_agree_on_the_fallback(trained: Path, exported: Path, tmp_path: Path) -> None:
    data = str(trained / "data" / "test.jsonl")
    from_run = evaluate_path(trained, data)
    # The same model behind a threshold that withholds some answers: in the widest gap between
    # two test scores, so that the export's rounding cannot move a question across it.
    scores = np.sort(pd.read_json(trained / "predictions.jsonl", lines=True)["score"].to_numpy())
    gap = int(np.argmax(np.diff(scores)))
    threshold = float((scores[gap] + scores[gap + 1]) / 2)
    retrieval = json.loads((trained / "retrieval.json").read_text())
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "retrieval.json").write_text(json.dumps({**retrieval, "threshold": threshold}))
    withheld_run = evaluate_path(run, data)
    withheld_export = evaluate_path(export_run(run, "withheld", tmp_path / "saved_models"), data)
    assert withheld_run["threshold"] == threshold
    assert 0.0 < withheld_run["coverage"] < 1.0
    for key in ("coverage", "selective_accuracy", "aurc", "recall_at_1"):
        assert withheld_run[key] == pytest.approx(withheld_export[key], abs=1e-6), key
    assert withheld_run["aurc"] == pytest.approx(from_run["aurc"])  # the ranking did not change
    # A fallback text that is also the best answer of a withheld question: the answer text
    # cannot show it was withheld, the export's `answered` output does.
    predictions = pd.read_json(run / "predictions.jsonl", lines=True)
    fallback = predictions.loc[predictions["score"] < threshold, "predicted"].iloc[0]
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["task"]["fallback_answer"] = fallback
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    shadowed = evaluate_path(export_run(run, "shadowed", tmp_path / "saved_models"), data)
    assert shadowed["coverage"] == pytest.approx(withheld_run["coverage"])


@pytest.mark.large  # a minute or more on 2 cores; CI runs it after the default suite (.ci/run)
def test_transformer_wordpiece_bert_and_mpnet_variants_export(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    preset = tiny_preset(tmp_path / "preset")
    mpnet = tmp_path / "mpnet-checkpoint"
    tiny_hf_mpnet_checkpoint(mpnet, faq_words())
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
            # text.answer_max_length from the data: longer than 12 WordPiece tokens, so capped there
        ],
        "pretrained": [
            "encoder.type=pretrained",
            f"encoder.preset={preset}",
            "encoder.freeze=1",
            "text.answer_max_length=12",
        ],
        "mpnet": [
            "encoder.type=pretrained",
            f"encoder.preset={mpnet}",
            "encoder.freeze=1",
            "text.answer_max_length=12",
        ],
    }
    versions = []
    for name, overrides in variants.items():
        config = tiny_config(
            "task.type=retrieve",
            "train.epochs=1",
            "train.jit_compile=false",
            *overrides,
            train=data,
        )
        run = train_run(config, tmp_path / name).run_dir
        assert json.loads((run / "metrics.json").read_text())["num_test"] > 0
        assert yaml.safe_load((run / "config.yaml").read_text())["text"]["answer_max_length"] == 12
        versions.append(export_run(run, name, tmp_path / "saved_models"))
    for out in reload_in_fresh_process(*versions):
        assert set(out["outputs"]) == OUTPUTS
        assert out["bank"] == len(TOPICS)
        assert out["embedding"] == 8


def test_symmetric_loss_with_early_stopping_on_the_bank_mrr(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    config = tiny_config(
        "task.type=retrieve",
        "task.loss=symmetric",
        "train.monitor=val_mrr",
        "train.epochs=3",
        "train.early_stopping=2",
        "train.jit_compile=false",
        train=data,
    )
    metrics = train_run(config, tmp_path / "run").metrics
    # The finished run keeps the best epoch in its model file, not also in a checkpoint.
    assert (tmp_path / "run" / "model.keras").is_file()
    assert not (
        tmp_path / "run" / "checkpoints"
    ).exists()  # nor the emptied folder (README: "while training only")
    # The validation questions ranked against the whole bank after each epoch; the best epoch's kept.
    assert 0.0 < metrics["best_val_mrr"] <= 1.0
    assert 0.0 <= metrics["best_val_recall_at_1"] <= metrics["best_val_mrr"]
    assert 0.0 < metrics["mrr"] <= 1.0


@pytest.mark.large  # slow (20-40 s); CI runs it after the default suite (.ci/run)
@pytest.mark.parametrize("miner", ["true", "model"])
def test_hard_negatives_train_and_export_like_a_plain_dual_encoder(tmp_path: Path, miner: str) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    config = tiny_config(
        "task.type=retrieve", f"task.hard_negatives={miner}", "train.jit_compile=false", train=data
    )
    result = train_run(config, tmp_path / "run")
    assert 0.0 < result.metrics["mrr"] <= 1.0
    model = load_run(result.run_dir)[2]
    assert {tensor.name for tensor in model.inputs} == {"question", "answer", "negative"}
    # The export embeds questions and answers with the towers alone: no negative input.
    version = export_run(result.run_dir, "hard", tmp_path / "saved_models")
    answer = Assistant(version).ask("what is your price?", top_k=2)
    assert answer.answer in TOPICS
    assert len(answer.alternatives) == 2


def test_model_mined_negatives_are_the_starting_models_nearest_wrong_answers(tmp_path: Path) -> None:
    from qa_assistant.data import load_qa_data
    from qa_assistant.tasks import get_task
    from qa_assistant.training.fitting import build_training
    from qa_assistant.training.strategy import make_placement

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    config = tiny_config(
        "task.type=retrieve", "task.hard_negatives=model", "train.jit_compile=false", train=data
    )
    qa, task = load_qa_data(config), get_task(config)
    model, train_ds, _, _ = build_training(task, qa, make_placement("default"))
    assert "negative" in next(iter(train_ds))[0]
    frame = qa.splits.train
    unbound = get_task(task.config)  # the settled config (answer length from the data)
    unbound.prepare(qa)
    with pytest.raises(RuntimeError, match="hard_negatives model: no ranker"):
        unbound.hard_negatives(frame)
    mined = task.hard_negatives(frame)
    # Independently: each question's most similar bank answer under the built model, right ones skipped.
    similarity = (
        task.embed_questions(model, frame["question"].tolist()) @ task.embed_answers(model, task.bank).T
    )
    right = frame.groupby("question")["answer"].agg(set)
    for row, (question, negative) in enumerate(zip(frame["question"], mined, strict=True)):
        assert negative not in right[question]
        wrong = [i for i, answer in enumerate(task.bank) if answer not in right[question]]
        assert similarity[row, task.bank.index(negative)] == pytest.approx(
            similarity[row, wrong].max(), abs=1e-6
        )
    # TF-IDF mining of the same rows ranks by shared words: another ranker, other negatives.
    settled = task.config
    tfidf = get_task(
        dataclasses.replace(settled, task=dataclasses.replace(settled.task, hard_negatives="tfidf"))
    )
    tfidf.prepare(qa)
    assert tfidf.hard_negatives(frame) != mined


# Conversational turns: each answer is also the next question, as in builtin:chatterbot.
TURNS = [
    {"question": "How are you doing?", "answer": "I am doing well."},
    {"question": "I am doing well.", "answer": "Glad to hear it."},
    {"question": "Glad to hear it.", "answer": "Thank you, what is your price?"},
]


@pytest.mark.parametrize("miner", ["tfidf", "model"])
def test_a_mined_negative_never_repeats_its_question(tmp_path: Path, miner: str) -> None:
    from qa_assistant.data import load_qa_data
    from qa_assistant.tasks import get_task
    from qa_assistant.tasks.retrieval.bank import ECHO_COSINE
    from qa_assistant.training.fitting import build_training
    from qa_assistant.training.strategy import make_placement

    data = tmp_path / "turns.csv"
    pd.DataFrame(faq_rows(per_answer=4) + TURNS * 2).to_csv(data, index=False)
    config = tiny_config(
        "task.type=retrieve", f"task.hard_negatives={miner}", "train.jit_compile=false", train=data
    )
    qa, task = load_qa_data(config), get_task(config)
    model = build_training(task, qa, make_placement("default"))[0]
    frame = qa.all_frames()
    questions = frame["question"].tolist()
    mined = task.hard_negatives(frame)
    cosine = task.embed_questions(model, questions) @ task.embed_answers(model, task.bank).T
    echo_rows = [row for row in range(len(questions)) if cosine[row].max() >= ECHO_COSINE]
    # The shared tower gives a question and the answer with its text one vector ...
    assert {questions[row] for row in echo_rows} >= {"i am doing well.", "glad to hear it."}
    for row, negative in enumerate(mined):
        # ... so that answer is never the negative training would push away.
        assert cosine[row, task.bank.index(negative)] < ECHO_COSINE, (questions[row], negative)
    assert len(set(mined)) > 1
    # A question the data does not hold (an augmented copy, say) is no exception.
    copy = pd.DataFrame({"question": ["thank you, what is your price?"], "answer": [TURNS[0]["answer"]]})
    assert task.hard_negatives(copy) != ["Thank you, what is your price?"]


@pytest.mark.parametrize("shared_towers", [True, False])
def test_an_augmented_copy_is_not_pushed_away_from_another_right_answer_of_its_original(
    tmp_path: Path, shared_towers: bool
) -> None:
    from qa_assistant.data import load_qa_data
    from qa_assistant.data.augment import Augmentation
    from qa_assistant.tasks import get_task
    from qa_assistant.training.fitting import build_training
    from qa_assistant.training.strategy import make_placement

    data = tmp_path / "faq.csv"
    price = "what is your price?"
    second = "Prices start at 10 euros, with a discount for students."
    rows = faq_rows(per_answer=4) + [{"question": price, "answer": a} for a in (TURNS[2]["answer"], second)]
    pd.DataFrame(rows * 3).to_csv(data, index=False)
    config = tiny_config(
        "task.type=retrieve", "task.hard_negatives=tfidf", f"task.shared_towers={shared_towers}", train=data
    )
    qa, task = load_qa_data(config), get_task(config)
    build_training(task, qa, make_placement("default"))  # prepares the task: bank, right answers, miner
    copy = pd.DataFrame({"question": ["what is your price please?"], "answer": [TURNS[2]["answer"]]})
    # Taken for a new question, the copy's nearest wrong answer is its original's other answer ...
    assert task.hard_negatives(copy) == [second]
    # ... which is right for it: a copy made from that question is given another negative.
    task.augmentation = Augmentation(copy, originals={"what is your price please?": price})
    assert task.hard_negatives(copy) not in ([second], [TURNS[2]["answer"]])


def test_hard_negatives_are_for_retrieval_only() -> None:
    with pytest.raises(
        UserError, match=r"task\.hard_negatives is for task\.type retrieve; got task\.type classify"
    ):
        tiny_config("task.hard_negatives=true")


def test_a_hard_negative_ceiling_needs_mined_negatives() -> None:
    with pytest.raises(
        UserError,
        match=r"task\.hard_negative_ceiling filters mined negatives; got it with task\.hard_negatives none",
    ):
        tiny_config("task.type=retrieve", "task.hard_negative_ceiling=0.95")
    assert tiny_config("task.type=retrieve", "task.hard_negatives=model", "task.hard_negative_ceiling=0.95")


def test_a_text_longer_than_the_pretrained_positions_is_one_clear_error(tmp_path: Path) -> None:
    """Before, a length past the backbone's position table failed mid-training in TensorFlow's slice."""
    data = tmp_path / "faq.csv"
    # Answers of over 40 tokens, so that a batch is as long as text.answer_max_length allows.
    rows = [{**row, "answer": " ".join([row["answer"]] * 6)} for row in faq_rows(per_answer=4)]
    pd.DataFrame(rows).to_csv(data, index=False)
    mpnet = tmp_path / "mpnet-checkpoint"
    tiny_hf_mpnet_checkpoint(mpnet, faq_words())
    bert = tiny_preset(tmp_path / "preset")  # 32 positions

    def config(preset: Path, *overrides: str) -> Any:
        return tiny_config(
            "task.type=retrieve",
            "train.epochs=1",
            "train.jit_compile=false",
            "encoder.type=pretrained",
            f"encoder.preset={preset}",
            *overrides,
            train=data,
        )

    limit = MPNET_SIZES["positions"] - 2  # MPNet's positions start after its padding id
    cases = [
        (
            config(mpnet, f"text.answer_max_length={limit + 1}"),
            f"text.answer_max_length is {limit + 1}",
            limit,
        ),
        (config(bert, "text.max_length=33", "text.answer_max_length=8"), "text.max_length is 33", 32),
        (config(bert, "task.type=generate", "text.max_length=33"), "text.max_length is 33", 32),  # seq2seq
    ]
    for number, (too_long, received, expected) in enumerate(cases):
        with pytest.raises(UserError, match=f"{received} but preset .* for {expected} tokens"):
            train_run(too_long, tmp_path / f"too-long-{number}")
        assert not (tmp_path / f"too-long-{number}").exists()  # nothing half-written
    # At the limit it trains: the last position is usable.
    fits = train_run(config(mpnet, f"text.answer_max_length={limit}"), tmp_path / "fits")
    assert fits.metrics["num_test"] > 0


def test_weight_averaging_moves_the_kept_weights_part_way_back_to_the_start(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    preset = tiny_preset(tmp_path / "preset")

    def run(name: str, *overrides: str) -> Path:
        config = tiny_config(
            "task.type=retrieve",
            "train.epochs=2",
            "train.jit_compile=false",
            "encoder.type=pretrained",
            f"encoder.preset={preset}",
            "encoder.freeze=1",
            "text.answer_max_length=12",
            *overrides,
            train=data,
        )
        return train_run(config, tmp_path / name).run_dir

    _, task, fine_tuned = load_run(run("plain"))
    _, _, averaged = load_run(run("averaged", "task.weight_averaging=0.25"))
    start = task.build_model()  # the preset's weights, as training started
    paths = [v.path for v in start.weights]
    assert [v.path for v in fine_tuned.weights] == [v.path for v in averaged.weights] == paths
    moved = 0
    for tuned, mixed, first in zip(fine_tuned.weights, averaged.weights, start.weights, strict=True):
        tuned, mixed, first = tuned.numpy(), mixed.numpy(), first.numpy()
        if np.array_equal(tuned, first):  # frozen (encoder.freeze=1): the start's exactly
            np.testing.assert_array_equal(mixed, first)
        else:
            moved += 1
            np.testing.assert_allclose(mixed, 0.25 * tuned + 0.75 * first, atol=1e-6)
    assert moved > 0  # training changed the encoder, so the average is not the start again
    assert moved < len(paths)  # and the frozen embeddings stayed


def test_weight_averaging_needs_a_dual_encoder_that_started_from_trained_weights() -> None:
    with pytest.raises(
        UserError, match=r"task\.weight_averaging \(0\.5\) averages a dual encoder .* for task\.type classify"
    ):
        tiny_config("task.weight_averaging=0.5")
    with pytest.raises(
        UserError, match=r"got encoder\.type gru without init\.source, which starts from random weights"
    ):
        tiny_config("task.type=retrieve", "task.weight_averaging=0.5")
    with pytest.raises(UserError, match=r"task\.weight_averaging"):
        tiny_config("task.type=retrieve", "task.weight_averaging=0")
    assert tiny_config("task.type=retrieve", "task.weight_averaging=0.5", "init.source=runs/base")


def test_a_run_already_averaged_is_refused_by_the_scripts_that_average_it() -> None:
    from qa_assistant.tasks.retrieval.task import check_not_averaged

    check_not_averaged(
        tiny_config("task.type=retrieve"), "runs/as-trained"
    )  # share 1: the weights as trained
    averaged = tiny_config("task.type=retrieve", "task.weight_averaging=0.75", "init.source=runs/base")
    with pytest.raises(UserError, match=r"'runs/x' was trained with task\.weight_averaging 0\.75.*=1$"):
        check_not_averaged(averaged, "runs/x")


def test_index_finds_a_bank_answer_written_with_other_spacing(exported: Path, tmp_path: Path) -> None:
    """An answer that differs from a bank answer only in spacing and line breaks is that answer."""
    (tmp_path / "new.csv").write_text(
        'question,answer\nwhen is lunch?,"A basic plan costs  10 euros\nper month."\n'
    )
    result = index_answers(exported.parent, str(tmp_path / "new.csv"), "respaced", tmp_path)
    assert (result.added_answers, result.added_questions) == (0, 1)
    bot = Assistant(result.version_dir)
    assert "when is lunch?" in _known_questions_of(bot, "A basic plan costs 10 euros per month.")


def test_evaluate_counts_answers_written_with_other_spacing_as_the_models(
    trained: Path, exported: Path, tmp_path: Path
) -> None:
    """An export made before answers kept their lines holds one-line answers; a file's multi-line
    (or double-spaced) copies of them are still its answers."""
    test = pd.read_json(trained / "data" / "test.jsonl", lines=True)
    respaced = test.assign(answer=test["answer"].str.replace(" ", "\n  ", n=1))
    assert (respaced["answer"] != test["answer"]).all()
    respaced.to_json(tmp_path / "respaced.jsonl", orient="records", lines=True)
    for model in (trained, exported):
        expected = evaluate_path(model, str(trained / "data" / "test.jsonl"))
        assert evaluate_path(model, str(tmp_path / "respaced.jsonl")) == expected


def test_the_fallback_reason_names_the_rank_as_an_ordinal() -> None:
    from qa_assistant.tasks.retrieval.task import _ordinal

    assert [_ordinal(rank) for rank in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        "",
        "2nd ",
        "3rd ",
        "4th ",
        "11th ",
        "12th ",
        "13th ",
        "21st ",
        "22nd ",
        "101st ",
        "111th ",
    ]


@pytest.mark.large  # two exports and an index (60-80 s); CI runs it after the default suite (.ci/run)
def test_exporting_a_run_again_after_index_says_which_answers_it_leaves_out(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path / "saved_models"
    with caplog.at_level("WARNING", logger="qa_assistant.serving.export"):
        first = export_run(trained, "faq", root)
    assert not [r for r in caplog.records if "qa-assistant index added" in r.getMessage()]
    (tmp_path / "new.csv").write_text("question,answer\nwhen is lunch?,Lunch is at noon.\n")
    index_answers(first, str(tmp_path / "new.csv"), "faq", root)
    with caplog.at_level("WARNING", logger="qa_assistant.serving.export"):
        third = export_run(trained, "faq", root)
    assert third.name == "3"
    (message,) = [r.getMessage() for r in caplog.records if "qa-assistant index added" in r.getMessage()]
    assert f"{root / 'faq' / '2'} also held 1 answer(s)" in message
    assert "new.csv" in message
