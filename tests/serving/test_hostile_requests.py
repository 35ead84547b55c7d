"""Whatever a client sends, the served model answers with valid outputs and bounded work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from qa_assistant.serving import Assistant
from qa_assistant.serving.export import export_run
from qa_assistant.serving.savedmodel import load_signature

HOSTILE = {
    "empty": "",
    "whitespace": " \t\r\n\u00a0\u3000 ",
    "100k characters": "How much does it cost? " * 4348,
    "100k without spaces": "x" * 100_000,
    "emoji": "💸💸 price 🤑?",
    "CJK": "价格是多少？営業時間は何時ですか",
    "right-to-left": "\u202eما هو السعر؟ מה המחיר",
    "control characters": "\x00\x01\x07\x1b[31mprice\x7f\u200b\ufeff",
    "all out of vocabulary": "zyxwvut qwertyuiop asdfghjkl",
    "markup": "<script>alert(1)</script>&lt;&#0;&#x110000;&bogus;",
    "invalid UTF-8": b"\xff\xfe\xc3\x28 price \xed\xa0\x80",
}


@pytest.fixture(scope="module")
def serve(tiny_export: Path):
    return tf.saved_model.load(str(tiny_export)).signatures["serving_default"]


@pytest.fixture(scope="module")
def labels(tiny_run: Path) -> set[bytes]:
    return {a.encode() for a in json.loads((tiny_run / "labels.json").read_text(encoding="utf-8"))}


def call(serve, questions: list) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in serve(question=tf.constant(questions, dtype=tf.string)).items()}


def assert_valid(out: dict[str, np.ndarray], count: int, labels: set[bytes]) -> None:
    assert out["answer"].shape == out["score"].shape == (count,)
    assert out["top_k_answers"].shape == out["top_k_scores"].shape == (count, 3)
    assert set(out["answer"]) <= labels
    assert set(out["top_k_answers"].reshape(-1)) <= labels
    scores = out["top_k_scores"]
    assert np.isfinite(scores).all()
    assert ((scores >= 0) & (scores <= 1)).all()
    assert (np.diff(scores, axis=1) <= 0).all()
    np.testing.assert_array_equal(out["score"], scores[:, 0])
    np.testing.assert_array_equal(out["answer"], out["top_k_answers"][:, 0])


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_each_hostile_question_alone_gets_a_valid_answer(serve, labels: set[bytes], kind: str) -> None:
    assert_valid(call(serve, [HOSTILE[kind]]), 1, labels)


def test_a_batch_of_1000_mixed_questions(serve, labels: set[bytes]) -> None:
    kinds = sorted(HOSTILE)
    batch = [HOSTILE[kinds[i % len(kinds)]] if i % 3 else "what is your price?" for i in range(1000)]
    out = call(serve, batch)
    assert_valid(out, 1000, labels)
    alone = call(serve, [HOSTILE["CJK"]])
    index = next(i for i, q in enumerate(batch) if q == HOSTILE["CJK"])
    assert out["answer"][index] == alone["answer"][0]  # batching does not change an answer
    np.testing.assert_allclose(out["score"][index], alone["score"][0], atol=1e-6)


def test_an_empty_batch_gives_empty_outputs(serve, tiny_export: Path) -> None:
    out = call(serve, [])
    assert {k: v.shape[0] for k, v in out.items()} == dict.fromkeys(out, 0)
    assert Assistant(tiny_export).ask_many([]) == []


def test_long_requests_cost_no_more_than_max_chars(serve, tiny_run: Path) -> None:
    max_chars = 10_000  # text.max_chars in the run's config; everything after it is never read
    assert f"max_chars: {max_chars}" in (tiny_run / "config.yaml").read_text()
    keyword = "refund email address"
    empty, alone = call(serve, [""]), call(serve, [keyword])
    assert (alone["answer"][0], alone["score"][0]) != (empty["answer"][0], empty["score"][0])  # it matters
    # Whitespace collapses during cleaning: the cut must come before it, so a keyword
    # after max_chars spaces is never read and the request answers like an empty one.
    long = call(serve, [" " * max_chars + keyword])
    assert long["answer"][0] == empty["answer"][0]
    assert long["score"][0] == empty["score"][0]
    head = "what is your price? " * (max_chars // 20)
    long, short = call(serve, [head + f" {keyword}" * 5000]), call(serve, [head])
    assert long["answer"][0] == short["answer"][0]
    assert long["score"][0] == short["score"][0]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.text(max_size=300), st.binary(max_size=100)),
        min_size=1,
        max_size=6,
    )
)
def test_any_batch_of_text_or_bytes_gets_valid_answers(serve, labels: set[bytes], questions: list) -> None:
    assert_valid(call(serve, questions), len(questions), labels)


def test_a_cnn_classifier_export_answers_an_empty_batch_and_an_empty_request(
    faq_csv: Path, tmp_path: Path
) -> None:
    """TensorFlow's convolution given no rows returned its input's shape, which the class head
    could not take (the CNN encoder pads the batch with a spare row and position for it)."""
    from qa_assistant.training.runner import train_run
    from tests.helpers import tiny_config

    # Filters unlike the word vectors in number, or the wrong shape would pass unseen.
    config = tiny_config("encoder.type=cnn", "encoder.units=12", train=faq_csv)
    run = train_run(config, tmp_path / "run").run_dir
    serve = load_signature(export_run(run, "faq", tmp_path / "saved_models"))
    out = call(serve, [])
    assert {k: v.shape[0] for k, v in out.items()} == dict.fromkeys(out, 0)
    assert call(serve, ["", "when do you open?"])["answer"].shape == (2,)
    assert call(serve, [""])["answer"].shape == (1,)  # a batch with no tokens at all
