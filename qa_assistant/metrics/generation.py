"""Metrics of generated answers, and the masked loss and accuracy used in training.

Text metrics compare each question's generated answer with *all* of its
reference answers (a question asked with several answers in the data has
several correct ones):

* `bleu` — corpus BLEU-4 as SacreBLEU computes it (`sacrebleu`: 13a
  tokenisation, exponential smoothing, brevity penalty from the reference
  closest in length), over every reference of each question, divided by 100
  to lie in [0, 1]; a run's `metrics.json` holds its `bleu_signature`;
* `rouge_l` — ROUGE-L F1 against the closest reference (`rouge-score`),
  averaged over questions;
* `exact_match` — share of questions whose answer equals a reference.

Likelihood metrics are teacher-forced over every (question, answer) pair,
padding excluded: `perplexity` = exp(mean negative log-likelihood per
token), `token_accuracy` = share of answer tokens (end token included) that
are the model's most likely next token, `oov_rate` = share of those tokens
that are "[UNK]" (words outside the answer vocabulary, which perplexity
scores as one cheap token: compare perplexities only at similar rates).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from qa_assistant.text.cleaning import one_line

_WORD = re.compile(r"\w+", re.UNICODE)


def masked_loss() -> keras.losses.Loss:
    """Token cross-entropy averaged over real target tokens (padding id 0 ignored)."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0, name="masked_loss")


@keras.saving.register_keras_serializable(package="qa_assistant")
class MaskedTokenAccuracy(keras.metrics.Metric):
    """Share of non-padding target tokens that are the argmax of the logits.

    Example:

    >>> metric = MaskedTokenAccuracy()
    >>> metric.update_state([[3, 2, 0]], [[[0, 0, 0, 9], [0, 9, 0, 0], [9, 0, 0, 0]]])
    >>> float(metric.result())
    0.5
    """

    def __init__(self, name: str = "token_accuracy", **kwargs: Any) -> None:
        super().__init__(name=name, **kwargs)
        self.correct = self.add_variable((), initializer="zeros", name="correct")
        self.total = self.add_variable((), initializer="zeros", name="total")

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        y_true = keras.ops.cast(y_true, "int32")
        real = keras.ops.cast(keras.ops.not_equal(y_true, 0), self.dtype)
        if sample_weight is not None:
            real = real * keras.ops.cast(sample_weight, self.dtype)
        hits = keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred, axis=-1), y_true), self.dtype)
        self.correct.assign_add(keras.ops.sum(hits * real))
        self.total.assign_add(keras.ops.sum(real))

    def result(self) -> Any:
        return keras.ops.divide_no_nan(self.correct, self.total)

    def reset_state(self) -> None:
        self.correct.assign(0.0)
        self.total.assign(0.0)


def exact_match(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> float:
    """Share of predictions equal to one of their references."""
    if not predictions:
        return 0.0
    hits = [p in set(refs) for refs, p in zip(references, predictions, strict=True)]
    return float(np.mean(hits))


def corpus_bleu(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> float:
    """Corpus BLEU-4 (SacreBLEU, every reference of each question), in [0, 1]."""
    return _bleu(references, predictions)[0]


def _bleu(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> tuple[float, str]:
    """`(score in [0, 1], SacreBLEU signature)`; questions may have different numbers of references."""
    from sacrebleu.metrics import BLEU  # deferred: start-up time

    bleu = BLEU()
    if not predictions:
        return 0.0, str(bleu.get_signature())
    width = max(len(refs) for refs in references)
    # SacreBLEU takes one stream per reference position; `None` marks a question with fewer.
    streams = [[refs[i] if i < len(refs) else None for refs in references] for i in range(width)]
    score = min(1.0, bleu.corpus_score(list(predictions), streams).score / 100)  # 100.00000000000004 happens
    return score, str(bleu.get_signature())


class _Words:
    """rouge-score tokenizer that keeps non-Latin letters (its default drops them)."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())


def rouge_l(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> float:
    """Mean ROUGE-L F1 of each prediction against its closest reference."""
    if not predictions:
        return 0.0
    return float(np.mean(rouge_l_scores(references, predictions)))


def rouge_l_scores(references: Sequence[Sequence[str]], predictions: Sequence[str]) -> np.ndarray:
    """`[n]` ROUGE-L F1 of each prediction against its closest reference (what `rouge_l` averages)."""
    from rouge_score import rouge_scorer  # deferred: start-up time

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Words())
    return np.asarray(
        [
            scorer.score_multi(list(refs), prediction)["rougeL"].fmeasure
            for refs, prediction in zip(references, predictions, strict=True)
        ],
        dtype=np.float64,
    )


def text_metrics(
    references: Sequence[Sequence[str]], predictions: Sequence[str], *, with_signature: bool = False
) -> dict[str, Any]:
    """`bleu`, `rouge_l` and `exact_match` of one prediction per question (and `bleu_signature`).

    Both sides are compared as `one_line` texts: a generator writes one line, and an answer
    that keeps its lines or its `10³` is still the answer it generated.
    """
    references = [[one_line(r) for r in refs] for refs in references]
    predictions = [one_line(p) for p in predictions]
    bleu, signature = _bleu(references, predictions)
    metrics: dict[str, Any] = {
        "bleu": bleu,
        "rouge_l": rouge_l(references, predictions),
        "exact_match": exact_match(references, predictions),
    }
    if with_signature:
        metrics["bleu_signature"] = signature
    return metrics


def likelihood_metrics(
    log_probability: np.ndarray, tokens: np.ndarray, correct: np.ndarray
) -> dict[str, float]:
    """`perplexity` and `token_accuracy` from per-answer sums (see `Generator.score`)."""
    total = float(np.sum(tokens))
    if total == 0:
        return {"perplexity": math.inf, "token_accuracy": 0.0}
    return {
        "perplexity": float(math.exp(-float(np.sum(log_probability)) / total)),
        "token_accuracy": float(np.sum(correct)) / total,
    }


def evaluate_generation(
    frame: Any,
    answer: Any,
    score: Any | None,
    *,
    batch_size: int = 64,
    score_batch_size: int | None = None,
) -> tuple[dict[str, float], Any]:
    """Generation metrics of a model on `(question, answer)` rows, and one prediction row per question.

    The same code evaluates a run (its `Generator` functions) and an export
    (its signatures).

    Args:
        frame: cleaned rows with `question` and `answer`; repeated questions
            are asked once, with all their answers as references.
        answer: questions `[n]` -> outputs with `answer` (bytes) and `score`,
            and `declined` (bool) from a model that declines off-topic
            requests: then `coverage`, the share of questions answered, is
            reported and each prediction row says whether it was declined.
        score: `(questions, answers)` -> `log_probability`, `tokens`,
            `correct_tokens`, `unknown_tokens`; `None` leaves out perplexity,
            token accuracy and the OOV rate.
        batch_size: questions per `answer` call.
        score_batch_size: rows per `score` call (`None`: `batch_size`); the
            teacher-forced pass holds `[rows, length, vocabulary]` logits.

    Returns:
        `(metrics, predictions)`.
    """
    import pandas as pd  # deferred: start-up time

    grouped = frame.groupby("question", sort=False)["answer"].agg(list)
    questions, references = grouped.index.tolist(), grouped.tolist()
    predicted, scores, declined = _answers(questions, answer, batch_size)
    metrics = {**text_metrics(references, predicted, with_signature=True), "num_questions": len(questions)}
    declines = len(declined) == len(questions) and bool(questions)
    if declines:
        metrics["coverage"] = 1.0 - float(np.mean(declined))
    if score is not None:
        metrics.update(_likelihood(frame, score, score_batch_size or batch_size))
    predictions = pd.DataFrame(
        {
            "question": questions,
            "references": references,
            "predicted": predicted,
            "score": scores,
            "exact": [p in set(r) for p, r in zip(predicted, references, strict=True)],
        }
    )
    if declines:
        predictions["declined"] = declined
    return metrics, predictions


def _answers(questions: list[str], answer: Any, batch_size: int) -> tuple[list[str], list[float], list[bool]]:
    """`(answers, scores, declined)` of `answer` over `questions` in batches (`declined` empty if never output)."""
    predicted: list[str] = []
    scores: list[float] = []
    declined: list[bool] = []
    for start in range(0, len(questions), batch_size):
        out = answer(questions[start : start + batch_size])
        predicted += [a.decode("utf-8") for a in np.asarray(out["answer"]).reshape(-1)]
        scores += np.asarray(out["score"], dtype=np.float64).reshape(-1).tolist()
        if "declined" in out:
            declined += np.asarray(out["declined"], dtype=bool).reshape(-1).tolist()
    return predicted, scores, declined


def _likelihood(frame: Any, score: Any, batch_size: int) -> dict[str, float]:
    """`perplexity`, `token_accuracy` and `oov_rate`, teacher-forced over every (question, answer) row."""
    sums: dict[str, list[np.ndarray]] = {
        "log_probability": [],
        "tokens": [],
        "correct_tokens": [],
        "unknown_tokens": [],
    }
    rows_q, rows_a = frame["question"].tolist(), frame["answer"].tolist()
    for start in range(0, len(rows_q), batch_size):
        out = score(rows_q[start : start + batch_size], rows_a[start : start + batch_size])
        for key, values in sums.items():
            values.append(np.asarray(out[key], dtype=np.float64).reshape(-1))
    joined = {k: np.concatenate(v) if v else np.zeros(0) for k, v in sums.items()}
    metrics = likelihood_metrics(joined["log_probability"], joined["tokens"], joined["correct_tokens"])
    total = float(np.sum(joined["tokens"]))
    metrics["oov_rate"] = float(np.sum(joined["unknown_tokens"])) / total if total else 0.0
    return metrics
