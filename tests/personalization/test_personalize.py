"""Personalisation: `--init-from` a run, an export or a preset; vocabulary extension; the class head."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa_assistant.cli import main
from qa_assistant.config import load_config
from qa_assistant.data.dataset import load_qa_data
from qa_assistant.errors import UserError
from qa_assistant.models.loading import load_keras_model
from qa_assistant.personalization.sources import (
    config_for_init,
    open_init_source,
    open_source,
    savedmodel_weights,
)
from qa_assistant.tasks import get_task
from qa_assistant.text.tokenizer_factory import load_tokenizer
from qa_assistant.training.initialize import initialize
from tests.helpers import TINY, faq_rows, tiny_preset
from tests.models.test_loading import booby_trapped

GYM = "The gym opens at 6 every morning."
MINE = [
    "when does the gym open",
    "gym opening hours",
    "what time is the gym open",
    "is the gym open early",
    "gym schedule please",
    "tell me the gym times",
]


@pytest.fixture
def mine_csv(tmp_path: Path) -> Path:
    """A user's pairs: a new answer asked with new words, and two answers the base knows."""
    rows = [{"question": q, "answer": GYM} for q in MINE]
    known = [r for r in faq_rows(seed=3) if r["answer"].startswith(("Our opening", "A basic"))]
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows + known).to_csv(path, index=False)
    return path


def prepared(config_overrides: list[str], init_from: Path | str, data: Path):
    """A task prepared on `data` that starts from `init_from`, and its freshly built model (no training)."""
    config = config_for_init([], [*config_overrides, f"data.train={data}"], str(init_from))
    task = get_task(config)
    task.init_source = open_source(config)
    task.prepare(load_qa_data(config))
    return task, task.build_model()


def test_new_words_are_appended_and_base_rows_and_answers_are_the_starting_point(
    tiny_run: Path, mine_csv: Path, tmp_path: Path
) -> None:
    base_vocabulary = load_tokenizer(tiny_run / "preprocessor").vocabulary
    base_labels = json.loads((tiny_run / "labels.json").read_text())
    base = {v.path: v.numpy() for v in load_keras_model(tiny_run / "model.keras").weights}
    task, model = prepared([], tiny_run, mine_csv)
    vocabulary = task.tokenizer.vocabulary
    assert vocabulary[: len(base_vocabulary)] == base_vocabulary  # base words keep their ids
    assert {"gym", "schedule"} <= set(vocabulary[len(base_vocabulary) :])
    fresh = model.get_layer("encoder").get_layer("token_embedding").embeddings.numpy().copy()

    report = initialize(task, model, tmp_path)

    embedding = model.get_layer("encoder").get_layer("token_embedding").embeddings.numpy()
    np.testing.assert_array_equal(embedding[: len(base_vocabulary)], base["token_embedding/embeddings"])
    new_rows = embedding[len(base_vocabulary) :]
    assert not np.allclose(new_rows, fresh[len(base_vocabulary) :])  # mean of the base rows + noise
    mean = base["token_embedding/embeddings"][2:].mean(axis=0)
    assert np.abs(new_rows.mean(axis=0) - mean).max() < np.abs(mean).max() + 0.05
    np.testing.assert_array_equal(
        model.get_layer("encoder").get_layer("gru_0").weights[0].numpy(), base["gru_0/gru_cell/kernel"]
    )
    kernel = model.get_layer("answer_logits").kernel.numpy()
    for column, label in enumerate(task.labels):
        if label in base_labels:  # a persisting answer keeps its column of the head
            np.testing.assert_array_equal(
                kernel[:, column], base["answer_logits/kernel"][:, base_labels.index(label)]
            )
    assert GYM in task.labels
    assert GYM not in base_labels
    assert sorted(report.loaded) == [
        "gru_0/gru_cell/bias",
        "gru_0/gru_cell/kernel",
        "gru_0/gru_cell/recurrent_kernel",
    ]
    assert {name for name, *_ in report.remapped} == {
        "token_embedding/embeddings",
        "answer_logits/kernel",
        "answer_logits/bias",
    }
    written = json.loads((tmp_path / "init.json").read_text())
    assert written["kind"] == "run"
    assert written["remapped"][0]["new"] == len(vocabulary) - len(base_vocabulary)


def test_init_from_an_export_loads_the_same_weights_without_running_its_graph(
    tiny_run: Path, tiny_export: Path
) -> None:
    from_run = open_init_source(str(tiny_run))
    from_export = open_init_source(str(tiny_export.parent))  # saved_models/NAME: the newest version
    assert from_export.kind == "export"
    assert from_export.path == tiny_export
    assert [n for n, _ in from_export.weights] == [n for n, _ in from_run.weights]
    for (_, a), (_, b) in zip(from_export.weights, from_run.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    assert from_export.tokenizer.vocabulary == from_run.tokenizer.vocabulary
    assert from_export.labels == from_run.labels
    assert len(savedmodel_weights(tiny_export)) == len(from_run.weights)


@pytest.mark.large  # 35-50 s on a quiet 2-core machine; CI runs it after the default suite (.ci/run)
def test_one_command_personalises_exports_and_trains_the_new_words(
    tiny_run: Path, mine_csv: Path, tmp_path: Path
) -> None:
    run, saved = tmp_path / "me_run", tmp_path / "saved_models"
    settings = [
        "train.epochs=3",
        "train.learning_rate=0.05",
        "train.warmup_epochs=1",
        "train.schedule=cosine",
    ]
    code = main(
        [
            *("train", "--init-from", str(tiny_run), "--train-data", str(mine_csv), "--output", str(run)),
            *(
                "--name",
                "me",
                "--saved-models",
                str(saved),
                "--set",
                *settings,
                "train.head_learning_rate=0.1",
            ),
        ]
    )
    assert code == 0
    version = saved / "me" / "1"
    assert (version / "saved_model.pb").is_file()
    config = load_config([run / "config.yaml"])
    assert config.init.source == str(tiny_run)
    assert config.encoder.units == 8  # the base's architecture
    assert config.data.test is None  # the user's data, not the base's test file
    base_size = load_tokenizer(tiny_run / "preprocessor").vocabulary_size
    vocabulary = load_tokenizer(run / "preprocessor").vocabulary
    trained = load_keras_model(run / "model.keras").get_layer("encoder").get_layer("token_embedding")
    # The initial rows of the new words, as the run computed them before training:
    task, model = prepared(settings, tiny_run, mine_csv)
    initialize(task, model)
    initial = model.get_layer("encoder").get_layer("token_embedding").embeddings.numpy()
    gym = vocabulary.index("gym")
    assert gym >= base_size
    assert not np.allclose(trained.embeddings.numpy()[gym], initial[gym], atol=1e-4)  # it was trained
    # The export answers raw text in a TensorFlow-only process, with the new answer among its labels.
    script = (
        "import sys, tensorflow as tf, tensorflow_text\n"
        "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = f(question=tf.constant(['when does the gym open']))\n"
        "print(sorted(a.decode() for a in out['top_k_answers'].numpy()[0]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(version)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert GYM in done.stdout
    assert (version / "assets.extra" / "preprocessor" / "vocab.txt").read_text().split("\n")[
        :-1
    ] == vocabulary


def test_init_from_a_model_with_a_lambda_is_refused_before_anything_is_written(
    tiny_run: Path, mine_csv: Path, tmp_path: Path, capsys
) -> None:
    base = tmp_path / "downloaded_run"
    shutil.copytree(tiny_run, base)
    marker = tmp_path / "pwned"
    booby_trapped(base / "model.keras", marker)
    output = tmp_path / "out"
    code = main(
        [
            *("train", "--init-from", str(base), "--train-data", str(mine_csv)),
            *("--output", str(output), "--set", *TINY),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "error: model file" in err
    assert "contains a Lambda layer ('sneaky')" in err
    assert "Traceback" not in err
    assert not marker.exists()
    assert not output.exists()


def test_init_from_a_preset_makes_the_encoder_pretrained(mine_csv: Path, tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path / "preset", layers=1)
    config = config_for_init([], [*TINY, f"data.train={mine_csv}"], str(preset))
    assert (config.encoder.type, config.encoder.preset, config.init.source) == (
        "pretrained",
        str(preset),
        str(preset),
    )
    task, model = prepared(TINY, preset, mine_csv)
    report = initialize(task, model)
    assert "transformer_layer_0/self_attention_layer/query/kernel" in report.loaded
    assert report.new == ["answer_logits/kernel", "answer_logits/bias"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no/such/run", "does not exist; expected a run directory, an export"),
        (".", "is not a run directory (model.keras + config.yaml), an export"),
    ],
)
def test_bad_sources_are_user_errors(spec: str, message: str, tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(UserError, match=re.escape(message)):
        open_init_source(str(tmp_path / spec) if spec != "." else str(tmp_path))


def test_an_unfinished_base_run_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    base = tmp_path / "unfinished"
    shutil.copytree(tiny_run, base)
    (base / "metrics.json").unlink()
    with pytest.raises(UserError, match="is an unfinished run"):
        open_init_source(str(base))


def test_an_answer_the_base_wrote_on_one_line_keeps_its_column(tiny_run: Path, tmp_path: Path) -> None:
    """Runs made before answers kept their lines hold one-line labels; the user's file may
    write the same answer over two lines."""
    base_labels = json.loads((tiny_run / "labels.json").read_text())
    known = base_labels[0]
    assert " " in known
    rows = [{"question": q, "answer": known.replace(" ", "\n", 1)} for q in MINE]
    rows += [{"question": q, "answer": GYM} for q in MINE]
    path = tmp_path / "mine.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    base = {v.path: v.numpy() for v in load_keras_model(tiny_run / "model.keras").weights}
    task, model = prepared([], tiny_run, path)
    initialize(task, model, tmp_path)
    column = next(i for i, label in enumerate(task.labels) if label != GYM)
    assert task.labels[column] != known  # written as the user's file writes it ...
    np.testing.assert_array_equal(  # ... and still the base's answer
        model.get_layer("answer_logits").kernel.numpy()[:, column], base["answer_logits/kernel"][:, 0]
    )
