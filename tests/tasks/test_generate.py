"""The generation task end to end on a tiny FAQ: train -> evaluate -> export -> reload -> generate."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.config import load_config
from qa_assistant.errors import UserError
from qa_assistant.serving import Assistant, export_run
from qa_assistant.serving.evaluate import evaluate_path
from qa_assistant.tasks.generation.generator import END, START
from qa_assistant.tasks.runs import load_run
from qa_assistant.training.runner import train_run
from tests.helpers import faq_rows, tiny_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "experiments" / "configs"
EPOCHS = 40
GENERATION = [
    "task.type=generate",
    "encoder.units=16",
    "decoder.max_length=16",
    "decoding.strategy=beam",
    "decoding.beam_width=2",
]
# The shipped GRU config, made tiny; trained long enough to memorise the FAQ.
CLI_SETTINGS = [
    "text.max_length=8",
    "embedding.dim=8",
    "encoder.units=16",
    "decoder.units=16",
    "decoder.max_length=16",
    "decoder.dropout=0",
    "decoding.strategy=beam",
    "decoding.beam_width=2",
    f"train.epochs={EPOCHS}",
    "train.batch_size=8",
    "train.learning_rate=0.005",  # tiny model, few steps: a larger step than the config's
    "train.early_stopping=0",
    "train.monitor=val_loss",  # decoding validation every epoch is the shipped configs' test's job
]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qa_assistant", *args], cwd=cwd, capture_output=True, text=True, timeout=900
    )


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """`(run_dir, export, finished process)` of one CLI training shared by the module.

    `qa-assistant train --config generate_gru_attention.yaml --train-data A --test-data B
    --output RUN --name faq`: one training and one export for all the tests below.
    """
    root = tmp_path_factory.mktemp("generate")
    rows = faq_rows(per_answer=10)
    seen: dict[str, int] = {}
    train, test = [], []
    for row in rows:  # two phrasings of every answer are held out
        seen[row["answer"]] = seen.get(row["answer"], 0) + 1
        (test if seen[row["answer"]] <= 2 else train).append(row)
    pd.DataFrame(train).to_csv(root / "train.csv", index=False)
    pd.DataFrame(test).to_csv(root / "test.csv", index=False)
    done = cli(
        "train",
        "--config",
        str(CONFIGS / "generate_gru_attention.yaml"),
        "--train-data",
        "train.csv",
        "--test-data",
        "test.csv",
        "--output",
        "run",
        "--name",
        "faq",
        "--set",
        *CLI_SETTINGS,
        cwd=root,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return root / "run", root / "saved_models" / "faq" / "1", done


@pytest.fixture(scope="module")
def trained(cli_run: tuple) -> Path:
    return cli_run[0]


@pytest.fixture(scope="module")
def loaded(trained: Path) -> tuple:
    """`(task, model)` of the finished run, shared so that its graph functions are traced once."""
    _, task, model = load_run(trained)
    return task, model


@pytest.fixture(scope="module")
def exported(cli_run: tuple) -> Path:
    return cli_run[1]


@pytest.mark.large  # slow (a beam-search `ask` in its own process); CI runs it after the default suite (.ci/run)
def test_cli_train_writes_metrics_and_ask_answers_from_the_export(cli_run: tuple) -> None:
    run, export, done = cli_run
    assert "| gru generate |" in done.stdout
    assert (export / "saved_model.pb").is_file()
    asked = cli(
        "ask",
        "--model",
        "saved_models/faq",
        "--json",
        "--top-k",
        "3",
        "--decoding",
        "strategy=beam",
        "--decoding",
        "beam_width=3",
        "--decoding",
        "no_repeat_ngram=2",
        "what is your price?",
        cwd=run.parent,
    )
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = json.loads(asked.stdout)
    assert len(answer["top_k"]) == 3
    assert isinstance(answer["answer"], str)
    assert answer["answer"]
    assert answer["score"] <= 0  # a log-probability


def test_run_writes_generation_metrics(trained: Path) -> None:
    assert (trained / "answer_preprocessor" / "vocab.txt").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    keys = (
        "bleu",
        "rouge_l",
        "exact_match",
        "token_accuracy",
        "oov_rate",
        "baseline_bleu",
        "baseline_exact_match",
    )
    for key in keys:
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["perplexity"] >= 1.0
    assert metrics["num_questions"] == metrics["num_test"] > 0
    predictions = pd.read_json(trained / "predictions.jsonl", lines=True)
    assert set(predictions.columns) >= {"question", "references", "predicted", "score", "exact"}
    assert (predictions["score"] <= 0).all()  # log-probabilities


@pytest.mark.large  # slow (20-60 s with its fixture); CI runs it after the default suite (.ci/run)
def test_score_counts_reference_words_outside_the_answer_vocabulary(loaded: tuple) -> None:
    task, model = loaded
    generator = task.generator(model)
    out = generator.score(
        tf.constant(["what is your price?"] * 2),
        tf.constant(["A basic plan costs 10 euros per month.", "A basic plan costs zzyzx euros."]),
    )
    assert out["unknown_tokens"].numpy().tolist() == [0.0, 1.0]


def test_it_memorises_its_training_answers(trained: Path, loaded: tuple) -> None:
    task, model = loaded
    metrics, _ = task.evaluate(model, pd.read_json(trained / "data" / "train.jsonl", lines=True))
    assert metrics["exact_match"] >= 0.8
    assert metrics["token_accuracy"] >= 0.95


def test_generated_scores_are_the_model_log_probabilities(loaded: tuple) -> None:
    """The decoding loop and teacher forcing agree on what the model says about an answer."""
    task, model = loaded
    generator = task.generator(model)
    questions = tf.constant(["what is your price?", "tell me the address", "hours please", ""])
    out = generator.answer(questions)
    again = generator.score(questions, out["answer"])
    assert out["length"].numpy().tolist() == again["tokens"].numpy().astype(int).tolist()
    assert np.allclose(out["score"].numpy(), again["log_probability"].numpy(), atol=1e-4)


def test_teacher_forcing_batches(trained: Path, loaded: tuple) -> None:
    task, _ = loaded
    vocabulary = task.target_tokenizer.vocabulary
    start, end = vocabulary.index(START), vocabulary.index(END)
    frame = pd.read_json(trained / "data" / "train.jsonl", lines=True)
    features, targets = next(iter(task.dataset(frame, training=False)))
    inputs, targets = features["decoder_ids"].numpy(), targets.numpy()
    assert inputs.shape == targets.shape
    assert (inputs[:, 0] == start).all()
    lengths = np.count_nonzero(targets, axis=1)
    for row, length in enumerate(lengths):
        assert targets[row, length - 1] == end
        assert (inputs[row, 1:length] == targets[row, : length - 1]).all()  # shifted by one
        assert not targets[row, length:].any()
        assert not inputs[row, length:].any()


def test_generation_trains_with_the_train_sections_schedule(loaded: tuple, monkeypatch) -> None:
    import dataclasses

    from qa_assistant.tasks.optimization import WarmupDecay

    task, _ = loaded
    train = dataclasses.replace(task.config.train, schedule="cosine", warmup_epochs=1)
    monkeypatch.setattr(task, "config", dataclasses.replace(task.config, train=train))
    monkeypatch.setattr(task, "steps_per_epoch", 5)
    fresh = task.build_model()  # not the shared model: compiling replaces its optimizer
    task.compile(fresh, jit_compile=False)
    assert isinstance(fresh.optimizer._learning_rate, WarmupDecay)  # it was a constant-rate Adam


def test_tensorboard_has_a_sample_table_every_epoch(trained: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained / "logs" / "validation"), size_guidance={"tensors": 0})
    events.Reload()
    tables = events.Tensors("sample_predictions")
    assert [e.step for e in tables] == list(range(EPOCHS))
    # Teacher-forced next-token accuracy is named so, apart from the tests' exact_match.
    assert "epoch_token_accuracy" in events.Tags()["tensors"]
    assert "epoch_accuracy" not in events.Tags()["tensors"]
    table = tf.make_ndarray(tables[-1].tensor_proto)
    assert table[0].tolist() == [b"question", b"reference", b"predicted", b"score", b"correct"]
    assert table.shape[0] > 1
    validation = pd.read_json(trained / "data" / "validation.jsonl", lines=True)
    assert {q.decode() for q in table[1:, 0]} <= set(validation["question"])


def test_run_and_export_evaluate_alike(trained: Path, loaded: tuple, exported: Path) -> None:
    task, model = loaded
    test = trained / "data" / "test.jsonl"
    from_run, _ = task.evaluate(model, pd.read_json(test, lines=True))
    from_export = evaluate_path(exported, str(test))
    assert from_export.pop("num_examples") == from_run["num_questions"]  # one pair per question here
    assert from_run.keys() == from_export.keys()
    for key, value in from_run.items():
        if isinstance(value, str):  # bleu_signature
            assert from_export[key] == value, key
        else:
            assert from_export[key] == pytest.approx(value, rel=1e-4), key
    assert json.loads((trained / "metrics.json").read_text())["bleu"] == pytest.approx(from_run["bleu"])


SCRIPT = """
import json, sys, tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
questions = tf.constant(json.loads(sys.argv[2]))
def plain(out):
    return {k: v.numpy().tolist() for k, v in out.items()}
def options(**given):
    spec = {"strategy": ("", tf.string), "beam_width": (-1, tf.int32), "top_k": (-1, tf.int32),
            "top_p": (-1.0, tf.float32), "temperature": (-1.0, tf.float32), "seed": (-1, tf.int64),
            "max_length": (-1, tf.int32), "length_penalty": (-1.0, tf.float32),
            "no_repeat_ngram": (-1, tf.int32), "repetition_penalty": (-1.0, tf.float32),
            "min_length": (-1, tf.int32)}
    return {k: tf.constant(given.get(k, d), t) for k, (d, t) in spec.items()}
out = {
    "default": plain(model.signatures["serving_default"](question=questions)),
    "beam3": plain(model.signatures["generate"](question=questions, **options(strategy="beam", beam_width=3, length_penalty=1.0))),
    "sample": plain(model.signatures["generate"](question=questions, **options(strategy="sample", seed=5, top_k=3))),
    "guards": plain(model.signatures["generate"](question=questions, **options(no_repeat_ngram=1, min_length=14))),
    "score": plain(model.signatures["score"](question=questions[:1], answer=tf.constant(["Parcels ship within 2 working days."]))),
}
assert not [m for m in sys.modules if m.startswith("qa_assistant")]
print(json.dumps(out, default=lambda b: b.decode()))
"""


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_export_generates_in_a_fresh_tensorflow_only_process(loaded: tuple, exported: Path) -> None:
    questions = ["what is your delivery?", "cost please", "", "WHAT IS YOUR DELIVERY?"]
    # TensorFlow plus tensorflow_text, which registers the NFKC op the default cleaning uses.
    done = subprocess.run(
        [sys.executable, "-c", "import tensorflow_text\n" + SCRIPT, str(exported), json.dumps(questions)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])

    task, model = loaded
    generator = task.generator(model)
    q = tf.constant(questions)
    expected = {
        "default": generator.answer(q),
        "beam3": generator.generate(q, "beam", 3, -1, -1.0, -1.0, -1, -1, 1.0, -1, -1.0, -1),
        "sample": generator.generate(q, "sample", -1, 3, -1.0, -1.0, 5, -1, -1.0, -1, -1.0, -1),
        "guards": generator.generate(q, "", -1, -1, -1.0, -1.0, -1, -1, -1.0, 1, -1.0, 14),
        "score": generator.score(q[:1], tf.constant(["Parcels ship within 2 working days."])),
    }
    for name, want in expected.items():
        for key, value in want.items():
            value = value.numpy()
            if value.dtype.kind == "O":
                assert out[name][key] == [
                    [v.decode() for v in r] if value.ndim > 1 else r.decode() for r in value
                ]
            else:
                assert np.allclose(out[name][key], value, atol=1e-4), (name, key)
    assert len(out["default"]["top_k_answers"][0]) == 2  # the configured beam width
    assert len(out["beam3"]["top_k_answers"][0]) == 3
    assert out["default"]["answer"][0] == out["default"]["answer"][3]  # cleaning happens inside
    assert out["default"]["answer"][0]  # a real answer, not empty
    # The guards reach the signature: no word twice (n = 1), and at least 14 tokens before the end.
    assert all(len(set(a.split())) == len(a.split()) for a in out["guards"]["answer"])
    assert min(out["guards"]["length"]) >= 15
    assert out["guards"]["answer"] != out["default"]["answer"]


def test_assistant_passes_decoding_options(exported: Path) -> None:
    bot = Assistant(exported)
    default = bot.ask("what is your delivery?")
    assert len(default.alternatives) == 2
    assert default.score == pytest.approx(default.alternatives[0][1])
    assert len(bot.ask("what is your delivery?", strategy="beam", beam_width=4).alternatives) == 4
    first = bot.ask("what is your delivery?", strategy="sample", seed=9, temperature=2.0)
    assert first == bot.ask("what is your delivery?", strategy="sample", seed=9, temperature=2.0)
    short = bot.ask("what is your delivery?", max_length=2)
    assert short.extra["length"] <= 2
    assert len(short.answer.split()) <= 2
    # The whole answer ends with the end token; two tokens cut it, and the export says so.
    assert default.extra["finished"] is True
    assert short.extra["finished"] is False
    # Requests cannot go past the trained answer length or hold unbounded beams: the export
    # clamps what a TF Serving client sends, and the Python API refuses it first.
    inputs = {**bot.check_options({"strategy": "beam"}), "beam_width": tf.constant(100_000)}
    assert bot.signature("generate")(question=tf.constant(["hi"]), **inputs)["top_k_answers"].shape[1] == 64
    inputs = {**bot.check_options({}), "max_length": tf.constant(10_000)}
    assert (
        bot.signature("generate")(question=tf.constant(["what is your delivery?"]), **inputs)["length"][0]
        <= 16
    )
    refused = [
        ({"beams": 3}, "unknown decoding option\\(s\\) beams; expected any of: beam_width"),
        ({"strategy": "nucleus"}, "decoding option 'strategy' got 'nucleus'; expected one of: greedy, beam"),
        ({"beam_width": "wide"}, "decoding option 'beam_width' expects an integer; got 'wide'"),
        ({"beam_width": [3, 4]}, "decoding option 'beam_width' expects an integer"),  # YAML's [3, 4]
        ({"beam_width": 100_000}, "decoding option 'beam_width' must be at most 64; got 100000"),
        (
            {"seed": 2**70},
            "decoding option 'seed' expects int64, one value in its range",
        ),  # would wrap around
        ({"top_p": 2}, "decoding option 'top_p' must be at most 1.0; got 2.0"),
        ({"temperature": -1}, "decoding option 'temperature' must be at least 0.0; got -1.0"),
        ({"repetition_penalty": 0.0}, "decoding option 'repetition_penalty' must be greater than 0; got 0.0"),
        (
            {"min_length": 10, "max_length": 5},
            "decoding option min_length \\(10\\) is above max_length \\(5\\); expected at most 5",
        ),
        (
            {"max_length": 10_000},
            "decoding option max_length \\(10000\\) is above the model's decoder.max_length \\(16\\)",
        ),
    ]
    for options, message in refused:
        with pytest.raises(UserError, match=message):
            bot.ask("hi", **options)
    # Sampling's top_k goes in `decoding`: the keyword `top_k` is the alternatives kept.
    sampled = bot.ask("hi", top_k=1, decoding={"strategy": "sample", "top_k": 1, "seed": 4})
    assert sampled == bot.ask("hi", top_k=1, decoding={"strategy": "greedy"})  # top-1 sampling is greedy
    with pytest.raises(UserError, match="decoding option 'top_k' must be at least 0; got -2"):
        bot.ask("hi", decoding={"top_k": -2})


@pytest.mark.large  # a minute or more on 2 cores; CI runs it after the default suite (.ci/run)
def test_transformer_encoder_decoder_exports_with_cached_decoding(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=4)).to_csv(data, index=False)
    config = tiny_config(
        *GENERATION,
        "train.epochs=1",
        "encoder.type=transformer",
        "encoder.heads=2",
        "encoder.intermediate_dim=16",
        "decoder.type=transformer",
        "decoder.heads=2",
        train=data,
    )
    run = train_run(config, tmp_path / "run").run_dir
    # export_run reloads the SavedModel and checks that its (beam-search) answers and
    # scores equal the in-process model's: the cached step decoding inside the export.
    version = export_run(run, "tiny", tmp_path / "saved_models")
    bot = Assistant(version)
    questions = ["what is your price?", "tell me the address"]
    sampled = bot.raw(questions, strategy="sample", seed=3, max_length=5)
    assert sampled["answer"].shape == (2,)
    assert (sampled["length"] <= 5).all()
    assert (
        sampled["answer"].tolist()
        == bot.raw(questions, strategy="sample", seed=3, max_length=5)["answer"].tolist()
    )


@pytest.mark.large
def test_memorises_the_builtin_corpus(tmp_path: Path) -> None:
    """It must at least be able to memorise: the shipped GRU config on its training questions.

    About 18 minutes on 2 CPU cores (150 epochs). Answers longer than
    `decoder.max_length` (4 % of the corpus) are cut and can never match.
    """
    # Guards off: memorising is the model's property, and no_repeat_ngram 3 forbids the 10 %
    # of training answers that hold a repeated trigram.
    guards_off = ["decoding.no_repeat_ngram=0", "decoding.repetition_penalty=1.0"]
    # The run keeps its best epoch by train.monitor: only the last may qualify here (the
    # question is what 150 epochs memorise), and validation is not decoded every epoch.
    last_epoch = ["train.monitor=val_loss", "train.monitor_from_epoch=149"]
    config = load_config(
        [CONFIGS / "generate_gru_attention.yaml"],
        ["train.early_stopping=0", "train.epochs=150", *guards_off, *last_epoch],
    )
    run = train_run(config, tmp_path / "run").run_dir
    _, task, model = load_run(run)
    metrics, _ = task.evaluate(model, pd.read_json(run / "data" / "train.jsonl", lines=True))
    assert metrics["exact_match"] >= 0.9
