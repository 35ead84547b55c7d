"""Grounding retrievers (`tasks/lm/grounding.py`): the TF-IDF baseline and a retrieval run's dual
encoder as graph code, eagerly, in a `tf.function` and reloaded from a SavedModel."""

from __future__ import annotations

import operator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.metrics.baselines import tfidf_nearest_answers
from qa_assistant.tasks.lm.grounding import (
    MISSING_SCORE,
    DualEncoderRetriever,
    Retriever,
    TfidfRetriever,
    tfidf_terms,
)
from tests.helpers import faq_rows, tiny_config

CORPUS = faq_rows(per_answer=7)  # 42 pairs: 6 answers, 7 phrasings each
QUESTIONS = [row["question"] for row in CORPUS]
ANSWERS = [row["answer"] for row in CORPUS]
FIRST_SEEN = list(dict.fromkeys(ANSWERS))
HOSTILE = [
    b"",
    b"hours " * 20_000 + b"price",  # 120,000 characters
    "price\x00\x01\x7f HOURS\u200b\ufeff\t\n?".encode(),
    b"\xff\xfe what is your \xc3 price \xed\xa0\x80",  # invalid UTF-8
    b"zebra quantum xylophone",  # no known word
]
# New phrasings (some seen, most not), a few sharing only common words, then hostile input.
REQUESTS = [
    *dict.fromkeys(row["question"].encode() for row in faq_rows(seed=7, per_answer=8)),
    b"Tell me, what is the PRICE and the hours?",
    b"the",
    b"what",
    *HOSTILE,
]
SPEC = [tf.TensorSpec([None], tf.string)]


def _as_text(values: np.ndarray) -> list[Any]:
    return np.vectorize(lambda b: b.decode(), otypes=[object])(values).tolist()


def sklearn_ranking(requests: list[bytes], k: int) -> tuple[list[list[str]], np.ndarray]:
    """The baseline's vectorizer, answers ranked by their best training question; ties to the earliest row."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    train = vectorizer.fit_transform(QUESTIONS)
    texts = [r.decode("utf-8", errors="replace") for r in requests]
    similarity = (vectorizer.transform(texts) @ train.T).toarray()
    owner = np.array([FIRST_SEEN.index(a) for a in ANSWERS])
    ranked, scores = [], []
    for row in similarity:
        best = np.array([row[owner == i].max() for i in range(len(FIRST_SEEN))])
        first = np.array([np.flatnonzero((owner == i) & (row == best[i]))[0] for i in range(len(FIRST_SEEN))])
        order = sorted(range(len(FIRST_SEEN)), key=lambda i: (-best[i], first[i]))[:k]
        ranked.append([FIRST_SEEN[i] for i in order])
        scores.append(best[order])
    return ranked, np.array(scores)


def with_serve(retriever: Retriever, k: int) -> Retriever:
    """The retriever with a `serve` graph function of raw requests `[batch]`, as an export traces it."""
    retriever.serve = tf.function(lambda q: retriever.retrieve(q, k), input_signature=SPEC, autograph=False)
    return retriever


@pytest.fixture(scope="module")
def tfidf() -> TfidfRetriever:
    return with_serve(TfidfRetriever(QUESTIONS, ANSWERS), 4)


@pytest.fixture(scope="module")
def dual(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, keras.Model]:
    """A retrieval task prepared on the corpus and its dual encoder, untrained: the plumbing is what counts."""
    from qa_assistant.data import load_qa_data
    from qa_assistant.tasks import get_task

    data = tmp_path_factory.mktemp("grounding") / "faq.csv"
    pd.DataFrame(CORPUS).to_csv(data, index=False)
    config = tiny_config("task.type=retrieve", "text.answer_max_length=12", train=data)
    task = get_task(config)
    task.prepare(load_qa_data(config))
    return task, task.build_model()


@pytest.fixture(scope="module")
def dual_retriever(dual: tuple[Any, keras.Model]) -> DualEncoderRetriever:
    return with_serve(DualEncoderRetriever(*dual), 4)


@pytest.fixture(scope="module")
def saved(
    tfidf: TfidfRetriever, dual_retriever: DualEncoderRetriever, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """Both retrievers as SavedModels: `tf.saved_model.save`, and Keras' `ExportArchive` as exports write them."""
    root = tmp_path_factory.mktemp("saved")
    tf.saved_model.save(tfidf, str(root / "tfidf"))
    tf.saved_model.save(dual_retriever, str(root / "dual"))
    archive = keras.export.ExportArchive()
    archive.track(tfidf)
    archive.add_endpoint(
        "serve", lambda q: dict(zip(("answers", "scores"), tfidf.retrieve(q, 4), strict=True)), SPEC
    )
    archive.write_out(str(root / "tfidf_archive"), verbose=False)
    return {"tfidf": root / "tfidf", "dual": root / "dual", "tfidf_archive": root / "tfidf_archive"}


# -- TF-IDF ------------------------------------------------------------------


def test_tfidf_terms_follow_scikit_learn_tokens() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    analyzer = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b").build_analyzer()
    texts = ["Été à Σ-ΣΑΣ x2 a_b İstanbul ⅕ e\u0301x", "What's up?! 12,5 €", "", "a\x00b"]
    got = tfidf_terms(tf.constant(texts)).to_list()
    assert [sorted(t.decode() for t in row) for row in got] == [sorted(analyzer(t)) for t in texts]


def test_tfidf_top_answer_is_the_python_baseline_eagerly_in_a_function_and_reloaded(
    tfidf: TfidfRetriever, saved: dict[str, Path]
) -> None:
    texts = [r.decode("utf-8", errors="replace") for r in REQUESTS]
    baseline = tfidf_nearest_answers(QUESTIONS, ANSWERS, texts)
    ranked, scores = sklearn_ranking(REQUESTS, 4)
    requests = tf.constant(REQUESTS)
    # Held while called: a reloaded object's variables go with it.
    reloaded, archive = (tf.saved_model.load(str(saved[name])) for name in ("tfidf", "tfidf_archive"))
    runs = {
        "eager": tfidf.retrieve(requests, 4),
        "function": tfidf.serve(requests),
        "reloaded": reloaded.serve(requests),
        "archive": operator.itemgetter("answers", "scores")(archive.serve(requests)),
    }
    for how, (answers, got) in runs.items():
        assert answers.shape == (len(REQUESTS), 4), how
        assert [row[0] for row in _as_text(answers.numpy())] == baseline, how
        assert _as_text(answers.numpy()) == ranked, how
        np.testing.assert_allclose(got.numpy(), scores, atol=1e-6, err_msg=how)


def test_tfidf_hostile_and_unknown_requests(tfidf: TfidfRetriever) -> None:
    answers, scores = tfidf.serve(tf.constant(HOSTILE))
    assert answers.shape == (len(HOSTILE), 4)
    # Empty, and no known word: every score 0, answers in their order of first appearance.
    for row in (0, 4):
        assert _as_text(answers.numpy())[row] == FIRST_SEEN[:4]
        assert (scores.numpy()[row] == 0).all()
    for row in (1, 2, 3):  # the known words still count
        assert scores.numpy()[row, 0] > 0
    empty_answers, empty_scores = tfidf.serve(tf.constant([], tf.string))
    assert empty_answers.shape == (0, 4)
    assert empty_scores.shape == (0, 4)


def test_more_places_than_answers_are_padded(tfidf: TfidfRetriever) -> None:
    serve_k = tf.function(
        tfidf.retrieve, input_signature=[*SPEC, tf.TensorSpec([], tf.int32)], autograph=False
    )
    answers, scores = serve_k(tf.constant([b"price, cost or fee?", b""]), tf.constant(8))
    assert answers.shape == (2, 8)
    assert answers.numpy()[0, 0].decode() == "A basic plan costs 10 euros per month."
    assert len(set(_as_text(answers.numpy()[0, :6]))) == 6
    assert (answers.numpy()[:, 6:] == b"").all()
    assert (scores.numpy()[:, 6:] == MISSING_SCORE).all()
    none, none_scores = tfidf.retrieve(tf.constant(["price"]), 0)
    assert none.shape == none_scores.shape == (1, 0)


def test_requests_are_cleaned_by_the_given_function(tfidf: TfidfRetriever) -> None:
    from qa_assistant.text.cleaning import clean_text

    cleaned = TfidfRetriever(QUESTIONS, ANSWERS, clean=clean_text)
    got = cleaned.retrieve(tf.constant(["<b>Price</b>&nbsp;&amp; FEE"]), 3)
    want = tfidf.retrieve(tf.constant(["price & fee"]), 3)
    for have, expected in zip(got, want, strict=True):
        assert (have.numpy() == expected.numpy()).all()


def test_training_questions_without_a_word() -> None:
    retriever = TfidfRetriever(["?", "!!", "?"], ["b", "a", "b"])
    answers, scores = retriever.retrieve(tf.constant(["hello", ""]), 3)
    assert _as_text(answers.numpy()) == [["b", "a", ""], ["b", "a", ""]]
    assert scores.numpy().tolist() == [[0, 0, MISSING_SCORE]] * 2


def test_tfidf_needs_pairs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        TfidfRetriever([], [])
    with pytest.raises(ValueError, match="2 questions but 1 answers"):
        TfidfRetriever(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="k must be"):
        TfidfRetriever(["a"], ["x"]).retrieve(tf.constant(["a"]), -1)


# -- dual encoder ------------------------------------------------------------


def test_dual_encoder_ranks_as_the_retrieval_task_predicts(
    dual: tuple[Any, keras.Model], dual_retriever: DualEncoderRetriever, saved: dict[str, Path]
) -> None:
    task, model = dual
    requests = [r.decode("utf-8", errors="replace") for r in REQUESTS]
    expected = task.predict(model, requests, 4)
    reloaded = tf.saved_model.load(str(saved["dual"]))
    runs = {
        "function": dual_retriever.serve(tf.constant(requests)),
        "reloaded": reloaded.serve(tf.constant(requests)),
    }
    for how, (answers, scores) in runs.items():
        assert (answers.numpy() == expected["top_k_answers"]).all(), how
        np.testing.assert_allclose(scores.numpy(), expected["top_k_scores"], atol=1e-6, err_msg=how)
    eager, _ = dual_retriever.retrieve(tf.constant(requests[:3]), 4)
    assert eager.shape == (3, 4)


def test_dual_encoder_over_given_pairs_pads(dual: tuple[Any, keras.Model]) -> None:
    task, model = dual
    chosen = [FIRST_SEEN[2], FIRST_SEEN[0], FIRST_SEEN[2]]  # a repeated answer is searched once
    retriever = DualEncoderRetriever(task, model, chosen, ["where are you", "price", "office"])
    assert retriever.bank.known_questions.numpy().tolist() == [b"", b"where are you", b"price", b"office"]
    answers, scores = retriever.retrieve(tf.constant(["what is your price?", ""]), tf.constant(3))
    assert answers.shape == (2, 3)
    for row, row_scores in zip(_as_text(answers.numpy()), scores.numpy(), strict=True):
        assert sorted(row[:2]) == sorted(FIRST_SEEN[i] for i in (0, 2))
        assert row[2] == ""
        assert row_scores[0] >= row_scores[1] > MISSING_SCORE == row_scores[2]
    alone = DualEncoderRetriever(task, model, chosen).retrieve(tf.constant(["what is your price?", ""]), 3)
    assert (alone[0].numpy() == answers.numpy()).all()  # known questions do not change the ranking
    with pytest.raises(ValueError, match="retrieval run"):
        DualEncoderRetriever(SimpleNamespace(name="classify"), model)
    with pytest.raises(ValueError, match="at least one answer"):
        DualEncoderRetriever(task, model, [])
    with pytest.raises(ValueError, match="2 questions but 3 answers"):
        DualEncoderRetriever(task, model, chosen, ["a", "b"])
    with pytest.raises(ValueError, match="need their answers"):
        DualEncoderRetriever(task, model, None, ["a"])
