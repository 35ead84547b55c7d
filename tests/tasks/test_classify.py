"""The classification task end to end on a tiny FAQ: train -> evaluate -> export -> reload -> answer."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from qa_assistant.errors import UserError
from qa_assistant.serving import Assistant, export_run
from qa_assistant.serving.evaluate import evaluate_path
from qa_assistant.tasks.runs import load_run
from qa_assistant.training.runner import train_run
from tests.helpers import (
    faq_rows,
    run_with_top_k,
    saved_variable_paths,
    split_with_a_second_answer,
    tiny_config,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("classify")
    data = root / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=8)).to_csv(data, index=False)
    # Label smoothing on: the reload and export tests below then cover the custom loss too.
    config = tiny_config(
        "train.epochs=25", "encoder.bidirectional=true", "task.label_smoothing=0.1", train=data
    )
    result = train_run(config, root / "run")
    return result.run_dir


def test_run_directory_is_complete(trained: Path) -> None:
    for name in (
        "config.yaml",
        "manifest.json",
        "model.keras",
        "labels.json",
        "metrics.json",
        "predictions.jsonl",
    ):
        assert (trained / name).is_file(), name
    assert (trained / "preprocessor" / "vocab.txt").is_file()
    for split in ("train", "validation", "test"):
        assert (trained / "data" / f"{split}.jsonl").is_file()
    assert list((trained / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((trained / "logs" / "validation").glob("events.out.tfevents.*"))


def test_the_saved_model_leaves_the_optimizer_state_out(trained: Path) -> None:
    import keras

    stored = saved_variable_paths(trained / "model.keras")
    assert any(name.startswith("layers/") for name in stored)
    assert not [name for name in stored if name.startswith("optimizer")]
    # Still loads compiled (with a fresh optimizer), holding the run's weights.
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        compiled = keras.saving.load_model(trained / "model.keras", compile=True)
    assert compiled.optimizer is not None
    assert int(compiled.optimizer.iterations.numpy()) == 0
    _, _, model = load_run(trained)
    for mine, theirs in zip(model.get_weights(), compiled.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_metrics_have_design_keys_and_learn_something(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in (
        "accuracy",
        "precision_macro",
        "recall_macro",
        "f1_macro",
        "recall_at_1",
        "recall_at_5",
        "recall_at_10",
        "mrr",
        "mrr_at_10",
        "num_train",
        "num_test",
        "num_questions",
        "train_seconds",
        "baseline_accuracy",
    ):
        assert isinstance(metrics[key], (int, float)), key
    assert metrics["accuracy"] == metrics["recall_at_1"]
    assert metrics["num_test"] >= metrics["num_questions"] > 0
    predictions = pd.read_json(trained / "predictions.jsonl", lines=True)
    assert len(predictions) == predictions["question"].nunique() == metrics["num_questions"]
    assert predictions["correct"].mean() == metrics["accuracy"]
    # Chance is 1/6 and one answer's share about as much; this model reaches 0.9 here.
    assert metrics["accuracy"] >= 0.6


def test_vocabulary_comes_from_training_split_only(trained: Path) -> None:
    vocabulary = set((trained / "preprocessor" / "vocab.txt").read_text().splitlines())
    train_words = {
        w
        for q in pd.read_json(trained / "data" / "train.jsonl", lines=True)["question"]
        for w in q.replace("?", " ?").split()
    }
    assert vocabulary - {"", "[UNK]"} <= train_words


def test_learning_rate_is_a_logged_metric(trained: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained / "logs" / "train"))
    events.Reload()
    tags = set(events.Tags()["tensors"]) | set(events.Tags()["scalars"])
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= tags


def test_reloaded_run_predicts_like_the_saved_predictions(trained: Path) -> None:
    _, task, model = load_run(trained)
    predictions = pd.read_json(trained / "predictions.jsonl", lines=True)
    questions = predictions["question"].tolist()
    out = task.predict(model, questions, top_k=3)
    assert [a.decode() for a in out["answer"]] == predictions["predicted"].tolist()


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_export_reload_in_a_fresh_tensorflow_only_process(trained: Path, tmp_path: Path) -> None:
    version = export_run(trained, "faq", tmp_path / "saved_models")
    assert version == tmp_path / "saved_models" / "faq" / "1"
    assert (version / "assets.extra" / "config.yaml").is_file()
    script = (
        "import json, sys, tensorflow as tf, tensorflow_text\n"
        "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = f(question=tf.constant(['what is your price?', '']))\n"
        "print(json.dumps({k: [x.decode() if isinstance(x, bytes) else float(x) for x in v.numpy().reshape(-1)]"
        " for k, v in out.items()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(version)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(out) == {"answer", "score", "top_k_answers", "top_k_scores"}
    assert len(out["answer"]) == 2
    assert len(out["top_k_answers"]) == 2 * 3
    in_process = Assistant(version).ask("what is your price?")
    assert out["answer"][0] == in_process.answer
    assert out["score"][0] == pytest.approx(in_process.score, abs=1e-5)


def test_evaluate_run_and_export_agree_per_question(trained: Path, tmp_path: Path) -> None:
    # One test question asked twice with two labels: scored once, right if either is predicted.
    data = str(split_with_a_second_answer(trained, tmp_path / "test.jsonl"))
    from_run = evaluate_path(trained, data)
    assert from_run["num_questions"] == from_run["num_examples"] - 1
    # export.top_k = 3 of 6 labels: no name claims more than 3 answers show.
    top3 = evaluate_path(export_run(trained, "top3", tmp_path / "saved_models"), data)
    assert set(top3) & {"mrr", "mrr_at_10", "recall_at_5", "recall_at_10"} == set()
    assert {"recall_at_1", "recall_at_3", "mrr_at_3"} <= set(top3)
    # export.top_k = 10 returns every label: a full ranking, the run's numbers exactly.
    whole = run_with_top_k(trained, 10, tmp_path / "top10")
    top10 = evaluate_path(export_run(whole, "top10", tmp_path / "saved_models"), data)
    keys = ("accuracy", "precision_macro", "recall_macro", "f1_macro", "recall_at_1", "recall_at_10")
    for key in (*keys, "mrr", "mrr_at_10"):
        assert top10[key] == from_run[key], key
    for key in ("accuracy", "f1_macro", "recall_at_1"):
        assert top3[key] == from_run[key], key


def test_evaluate_warns_of_classes_the_model_never_learned(
    trained: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = pd.read_json(trained / "data" / "test.jsonl", lines=True)
    frame.loc[0, "answer"] = "An answer the model never saw."
    frame.to_json(tmp_path / "unseen.jsonl", orient="records", lines=True)
    export = export_run(trained, "unseen", tmp_path / "saved_models")
    for model in (trained, export):
        caplog.clear()
        with caplog.at_level("WARNING", logger="qa_assistant.serving.evaluate"):
            evaluate_path(model, str(tmp_path / "unseen.jsonl"))
        warned = [r.getMessage() for r in caplog.records if "never saw in training" in r.getMessage()]
        assert len(warned) == 1, model
        assert warned[0].startswith(f"1 of {len(frame)} examples in ")
    caplog.clear()
    with caplog.at_level("WARNING", logger="qa_assistant.serving.evaluate"):
        evaluate_path(trained, str(trained / "data" / "test.jsonl"))
    assert not [r for r in caplog.records if "never saw in training" in r.getMessage()]


def test_a_run_on_renamed_columns_evaluates_its_own_split_files(trained: Path, tmp_path: Path) -> None:
    """A run trained on `q`/`a` columns writes its splits as question/answer; both must evaluate."""
    renamed = tmp_path / "renamed"
    shutil.copytree(trained, renamed)
    config = yaml.safe_load((renamed / "config.yaml").read_text())
    config["data"].update(question_column="q", answer_column="a")
    (renamed / "config.yaml").write_text(yaml.safe_dump(config))
    split = renamed / "data" / "test.jsonl"
    expected = evaluate_path(trained, str(split))
    assert evaluate_path(renamed, str(split)) == expected
    frame = pd.read_json(split, lines=True)
    frame.rename(columns={"question": "q", "answer": "a"}).to_csv(tmp_path / "qa.csv", index=False)
    assert evaluate_path(renamed, str(tmp_path / "qa.csv")) == expected
    frame.rename(columns={"question": "x", "answer": "y"}).to_csv(tmp_path / "xy.csv", index=False)
    with pytest.raises(
        UserError, match=r"columns 'x', 'y'; expected 'q', 'a' or 'question', 'answer' \(.*rename"
    ):
        evaluate_path(renamed, str(tmp_path / "xy.csv"))


def test_signature_names_and_shapes(trained: Path, tmp_path: Path) -> None:
    version = export_run(trained, "faq", tmp_path)
    bot = Assistant(tmp_path / "faq")
    assert bot.path == version
    out = bot.raw(["a", "b", "c"])
    assert out["answer"].shape == (3,)
    assert out["score"].shape == (3,)
    assert out["top_k_answers"].shape == (3, 3)
    assert out["top_k_scores"].shape == (3, 3)
    assert np.all(np.diff(out["top_k_scores"], axis=1) <= 0)
    assert np.allclose(out["score"], out["top_k_scores"][:, 0])
    with pytest.raises(UserError, match="takes no decoding options \\(strategy\\); only a generation export"):
        bot.ask("a", strategy="beam")


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_versions_increment_and_never_overwrite(trained: Path, tmp_path: Path) -> None:
    first = export_run(trained, "faq", tmp_path)
    marker = first / "assets.extra" / "marker"
    marker.write_text("keep")
    second = export_run(trained, "faq", tmp_path)
    assert (first.name, second.name) == ("1", "2")
    assert marker.read_text() == "keep"
    assert not [p for p in (tmp_path / "faq").iterdir() if p.name.startswith(".tmp")]


def test_unseen_test_labels_count_as_errors_and_glove_initialises_the_embedding(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    pd.DataFrame(faq_rows(per_answer=6)).to_csv(train, index=False)
    rows = [
        *faq_rows(seed=5, per_answer=2)[:4],
        {"question": "who are you", "answer": "An answer nobody trained."},
    ]
    pd.DataFrame(rows).to_csv(test, index=False)
    vectors = tmp_path / "glove.txt"
    vectors.write_text("price " + " ".join(["0.5"] * 8) + "\nhours " + " ".join(["-0.5"] * 8) + "\n")
    config = tiny_config("train.epochs=1", f"embedding.pretrained={vectors}", train=train, test=test)
    from qa_assistant.data import load_qa_data
    from qa_assistant.tasks import get_task

    data = load_qa_data(config)
    assert data.splits.notes["unseen_test_labels"] == 1
    task = get_task(config)
    task.prepare(data)
    model = task.build_model()
    table = model.get_layer("encoder").get_layer("token_embedding").embeddings.numpy()
    assert np.allclose(table[task.tokenizer.vocabulary.index("price")], 0.5)
    assert np.allclose(table[task.tokenizer.vocabulary.index("hours")], -0.5)
    task.compile(model, jit_compile=False)
    metrics, predictions = task.evaluate(model, data.splits.test)
    unseen = predictions["reference"] == "An answer nobody trained."
    assert not predictions.loc[unseen, "correct"].any()
    assert predictions.loc[unseen, "rank"].isna().all()  # never ranked: null in predictions.jsonl
    assert metrics["accuracy"] <= 4 / 5


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_smoothed_sparse_crossentropy_equals_keras_dense_label_smoothing(smoothing: float) -> None:
    import keras

    from qa_assistant.tasks.classify import SmoothedSparseCrossentropy

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 5)).astype("float32") * 3
    labels = np.array([0, 4, 2, 2, 1, 3])
    ours = SmoothedSparseCrossentropy(smoothing)(labels, logits)
    dense = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=smoothing)
    assert float(ours) == pytest.approx(float(dense(np.eye(5)[labels], logits)), rel=1e-5)
    restored = SmoothedSparseCrossentropy.from_config(SmoothedSparseCrossentropy(smoothing).get_config())
    assert restored.smoothing == smoothing


def test_label_smoothing_is_for_classifiers_only() -> None:
    with pytest.raises(
        UserError, match=re.escape("task.label_smoothing (0.1) smooths a classifier's targets; expected 0")
    ):
        tiny_config("task.type=retrieve", "task.label_smoothing=0.1")


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_an_ensemble_trains_each_member_on_its_own_loss_not_on_the_average(smoothing: float) -> None:
    import keras

    from qa_assistant.tasks.classify import SmoothedSparseCrossentropy

    rng = np.random.default_rng(1)
    logits = (rng.normal(size=(6, 3, 5)) * 3).astype("float32")  # [examples, members, classes]
    labels = np.array([0, 4, 2, 2, 1, 3])
    loss = SmoothedSparseCrossentropy(smoothing, reduction=None)
    per_example = np.asarray(loss(labels, logits))
    members = np.stack([np.asarray(loss(labels, logits[:, m])) for m in range(3)], axis=1)
    np.testing.assert_allclose(per_example, members.mean(axis=1), rtol=1e-5)
    # Not the loss of the averaged probabilities, which would train the members jointly.
    mean_probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1)).mean(axis=1)
    joint = np.asarray(loss(labels, np.log(mean_probabilities)))
    assert np.all(per_example > joint + 1e-4)


def test_an_ensemble_answers_with_the_mean_of_members_of_their_own(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from qa_assistant.tasks.classify import ensemble_probabilities

    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=8)).to_csv(data, index=False)
    config = tiny_config("train.epochs=12", "task.ensemble=3", "task.label_smoothing=0.1", train=data)
    run = train_run(config, tmp_path / "run").run_dir
    _, task, model = load_run(run)  # the custom metrics reload too
    members = [model.get_layer(f"member_{m}") for m in (1, 2, 3)]
    embeddings = [m.get_layer("encoder").get_layer("token_embedding").embeddings.numpy() for m in members]
    assert not np.allclose(embeddings[0], embeddings[1])  # members of their own, not copies
    assert not np.allclose(embeddings[1], embeddings[2])
    predictions = pd.read_json(run / "predictions.jsonl", lines=True)
    questions = predictions["question"].tolist()
    ids = task.tokenizer(tf.constant(questions))
    alone = [keras.ops.convert_to_numpy(keras.ops.softmax(m(ids), axis=-1)) for m in members]
    np.testing.assert_allclose(task.scores(model, questions), np.mean(alone, axis=0), atol=1e-6)
    np.testing.assert_allclose(ensemble_probabilities(model(ids)), np.mean(alone, axis=0), atol=1e-6)
    metrics = json.loads((run / "metrics.json").read_text())
    labels = np.asarray(task.labels)[np.mean(alone, axis=0).argmax(axis=1)]
    assert metrics["accuracy"] == pytest.approx((labels == predictions["reference"]).mean())
    assert metrics["accuracy"] > 0.5
    # The export answers as the ensemble does (export_run checks the reloaded SavedModel too).
    bot = Assistant(export_run(run, "ensemble", tmp_path / "saved_models"))
    answered = bot.raw(questions)
    assert [a.decode() for a in answered["answer"]] == labels.tolist()
    np.testing.assert_allclose(answered["score"], np.mean(alone, axis=0).max(axis=1), atol=1e-5)


def test_an_ensemble_is_for_classifiers_only() -> None:
    with pytest.raises(UserError, match=re.escape("task.ensemble (3) averages classifiers; expected 1")):
        tiny_config("task.type=retrieve", "task.ensemble=3")
    with pytest.raises(UserError, match=r"task\.ensemble.*0"):
        tiny_config("task.ensemble=0")
