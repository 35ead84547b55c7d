"""Classical baselines fitted on exactly the same split as the neural model."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from qa_assistant.metrics.ranking import (
    Scored,
    classification_metrics,
    group_references,
    rank_candidates,
    ranking_metrics,
)


def tfidf_logistic_regression(
    train_questions: list[str],
    train_labels: list[str],
    test_questions: list[str],
    test_labels: list[str],
    *,
    seed: int = 0,
) -> dict[str, float]:
    """TF-IDF (word 1-2-grams) + multinomial logistic regression.

    Questions are the already-cleaned text the neural model sees. Scored as
    the model is (`metrics/ranking.py`): once per distinct test question,
    right when the prediction is any of its labels; labels never seen in
    training count as errors, as they do for the model.

    Returns:
        The same metric keys as the classification task.
    """
    questions, references = group_references(test_questions, test_labels)
    if not questions:
        return {**classification_metrics([], []), **ranking_metrics([])}
    scored = tfidf_logistic_regression_scored(train_questions, train_labels, questions, references, seed=seed)
    return {**classification_metrics(references, scored.predicted), **ranking_metrics(scored.rank)}


def tfidf_logistic_regression_scored(
    train_questions: list[str],
    train_labels: list[str],
    questions: list[str],
    references: list[list[str]],
    *,
    seed: int = 0,
) -> Scored:
    """`tfidf_logistic_regression`'s per-question predictions and ranks: one per entry of `questions`.

    For paired tests against a model tested on the same distinct questions
    (`analysis/compare.py`).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # deferred: start-up time
    from sklearn.linear_model import LogisticRegression  # deferred: start-up time

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    features = vectorizer.fit_transform(train_questions)
    classifier = LogisticRegression(C=10.0, max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        # "more unique classes than half the samples": expected for one-phrasing FAQs.
        warnings.simplefilter("ignore", UserWarning)
        classifier.fit(features, train_labels)
    scores = classifier.predict_proba(vectorizer.transform(questions))
    return rank_candidates(scores, [str(c) for c in classifier.classes_], references)


def tfidf_retrieval(
    train_questions: list[str],
    train_answers: list[str],
    test_questions: list[str],
    test_answers: list[str],
    bank: list[str],
) -> dict[str, float]:
    """TF-IDF (word 1-2-grams) answer retrieval over the whole answer bank.

    Each bank answer is represented by its own text plus the training
    questions that lead to it (the classical FAQ-retrieval document); a test
    question is ranked against every answer by cosine similarity. Scored as
    the model is: once per distinct test question, a hit on any of its answers.

    Returns:
        `recall_at_1/5/10`, `mrr`, `mrr_at_10` and `accuracy` (= `recall_at_1`).
    """
    questions, references = group_references(test_questions, test_answers)
    scores = tfidf_answer_scores(train_questions, train_answers, questions, bank)
    metrics = ranking_metrics(rank_candidates(scores, bank, references).rank)
    return {**metrics, "accuracy": metrics["recall_at_1"]}


def tfidf_answer_scores(
    train_questions: list[str], train_answers: list[str], questions: list[str], bank: list[str]
) -> np.ndarray:
    """`[questions, bank]` TF-IDF cosine of each question with each answer document (`tfidf_answer_index`)."""
    vectorizer, answer_vectors = tfidf_answer_index(train_questions, train_answers, bank)
    if not questions:
        return np.zeros((0, len(bank)))
    return (vectorizer.transform(questions) @ answer_vectors.T).toarray()


def tfidf_answer_index(
    train_questions: list[str], train_answers: list[str], bank: list[str]
) -> tuple[Any, Any]:
    """A fitted TF-IDF vectorizer and the bank's sparse unit vectors, one document per answer.

    An answer's document is its text plus the training questions that lead
    to it (word 1-2-grams, sublinear term frequency).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # deferred: start-up time

    questions_of: dict[str, list[str]] = {answer: [] for answer in bank}
    for question, answer in zip(train_questions, train_answers, strict=True):
        questions_of.setdefault(answer, []).append(question)
    documents = [" ".join([answer.lower(), *questions_of[answer]]) for answer in bank]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    return vectorizer, vectorizer.fit_transform(documents)


def tfidf_nearest_answers(
    train_questions: list[str], train_answers: list[str], test_questions: list[str]
) -> list[str]:
    """Retrieval baseline for generation: the answer of the most similar training question.

    Similarity is the cosine of TF-IDF vectors (word 1-2-grams); ties go to
    the first training row.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer  # deferred: start-up time

    if not test_questions:
        return []
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b")
    train = vectorizer.fit_transform(train_questions)
    similarity = vectorizer.transform(test_questions) @ train.T
    best = np.asarray(similarity.argmax(axis=1)).reshape(-1)
    return [train_answers[i] for i in best]
