"""The answer bank inside a retrieval export, and the function that searches it.

The bank is held in `tf.Variable`s whose first dimension is free, exposed on
the reloaded SavedModel as the variable collection `bank` (in the order of
`BANK_FIELDS`). `qa-assistant index` reloads an export, grows these variables
with new answers embedded by the export's own `embed_answers` signature, and
saves it again as a new version: no retraining, no project code inside.

A bank answer that the encoder cannot tell from the request (cosine at least
`ECHO_COSINE`: the same text, up to what the tokenizer ignores) is never
returned. In conversational data a turn is both one question's answer and the
next question ("how are you doing?"), and with shared towers that answer
scores 1.0 against itself: repeating the request is never its answer
(`mask_echoes`; measured in BENCHMARKS.md, "The recommended assistant").

Known questions (the questions of the data, with the bank index of their
answer) let the export say which known question best matches a request
among those of the chosen answer, so a user can see why it was chosen. Row 0
is a sentinel that belongs to no answer, so the search never runs over an
empty set.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

BANK_COLLECTION = "bank"
BANK_FIELDS = ("answers", "embeddings", "known_questions", "known_embeddings", "known_answer_ids")
# What `search` returns: the retrieval export's `serving_default` outputs.
OUTPUTS = (
    "answer",
    "score",
    "top_k_answers",
    "top_k_scores",
    "matched_question",
    "matched_question_score",
    "answered",
)


# Cosine from which a bank answer is the request itself: the same tokens give 1.0 up to float
# rounding; different texts, even near-paraphrases, stay well below it.
ECHO_COSINE = 0.9999
BELOW_ANY_COSINE = -2.0


def mask_echoes(scores: Any) -> Any:
    """Cosines `[questions, answers]` with the answers that repeat their question pushed below any cosine.

    NumPy arrays in, NumPy out (evaluation); tensors in, tensors out (the export's graph).
    """
    if isinstance(scores, np.ndarray):
        return np.where(scores >= ECHO_COSINE, np.float32(BELOW_ANY_COSINE), scores).astype(scores.dtype)
    return tf.where(scores >= ECHO_COSINE, tf.constant(BELOW_ANY_COSINE, scores.dtype), scores)


class AnswerBank(tf.Module):
    """Answers, their unit embeddings, and known questions with theirs.

    Args:
        answers: `[n]` answer texts (what the assistant says).
        embeddings: `[n, d]` unit vectors of the answers.
        known_questions: `[m]` questions seen in the data.
        known_embeddings: `[m, d]` their unit vectors.
        known_answer_ids: `[m]` bank index of each known question's answer.
    """

    def __init__(
        self,
        answers: Sequence[str],
        embeddings: np.ndarray,
        known_questions: Sequence[str],
        known_embeddings: np.ndarray,
        known_answer_ids: Sequence[int],
    ) -> None:
        super().__init__(name="answer_bank")
        width = int(np.shape(embeddings)[1])
        known_embeddings = np.reshape(np.asarray(known_embeddings, dtype=np.float32), (-1, width))
        self.answers = _variable(list(answers), tf.string, [None], "bank_answers")
        self.embeddings = _variable(embeddings, tf.float32, [None, width], "bank_embeddings")
        self.known_questions = _variable(["", *known_questions], tf.string, [None], "known_questions")
        self.known_embeddings = _variable(
            np.concatenate([np.zeros((1, width), np.float32), known_embeddings]),
            tf.float32,
            [None, width],
            "known_embeddings",
        )
        self.known_answer_ids = _variable(
            [-1, *[int(i) for i in known_answer_ids]], tf.int32, [None], "known_answer_ids"
        )

    def collection(self) -> list[tf.Variable]:
        """The variables in `BANK_FIELDS` order."""
        return [getattr(self, name) for name in BANK_FIELDS]


def _variable(value: Any, dtype: tf.DType, shape: list[int | None], name: str) -> tf.Variable:
    return tf.Variable(
        tf.constant(value, dtype=dtype), shape=tf.TensorShape(shape), trainable=False, name=name
    )


def search(
    question_vectors: tf.Tensor,
    bank: AnswerBank | Sequence[tf.Variable],
    top_k: int,
    threshold: float | None,
    fallback: str | None,
) -> dict[str, tf.Tensor]:
    """Ranks the bank for unit question vectors `[batch, d]`.

    Args:
        question_vectors: unit vectors of the questions.
        bank: an `AnswerBank`, or its variables in `BANK_FIELDS` order.
        top_k: alternatives returned (fewer if the bank is smaller).
        threshold: cosine similarity below which `fallback` is answered.
        fallback: the answer below the threshold; `None` never falls back.

    Returns:
        `answer`, `score` (cosine similarity), `top_k_answers`,
        `top_k_scores`, `matched_question` (the chosen answer's known
        question closest to the request, `""` if it has none or the
        fallback was chosen), `matched_question_score` (0 then) and
        `answered` (false where the fallback was chosen).
    """
    answers, embeddings, known_questions, known_embeddings, known_ids = (
        bank.collection() if isinstance(bank, AnswerBank) else bank
    )
    scores = mask_echoes(tf.matmul(question_vectors, embeddings, transpose_b=True))
    k = tf.minimum(top_k, tf.shape(answers)[0])
    top = tf.math.top_k(scores, k=k)
    best_score, best_id = top.values[:, 0], top.indices[:, 0]
    answer = tf.gather(answers, best_id)
    answered = tf.ones_like(best_score, dtype=tf.bool)
    if threshold is not None and fallback is not None:
        answered = best_score >= threshold
        answer = tf.where(answered, answer, tf.constant(fallback))
    has_known = answered  # the fallback answer has no known question
    known_scores = tf.matmul(question_vectors, known_embeddings, transpose_b=True)
    same_answer = tf.equal(known_ids[None, :], best_id[:, None])
    masked = tf.where(same_answer, known_scores, tf.constant(BELOW_ANY_COSINE))
    has_known = has_known & tf.reduce_any(same_answer, axis=1)
    matched = tf.gather(known_questions, tf.argmax(masked, axis=1, output_type=tf.int32))
    return {
        "answer": answer,
        "score": best_score,
        "top_k_answers": tf.gather(answers, top.indices),
        "top_k_scores": top.values,
        "matched_question": tf.where(has_known, matched, tf.constant("")),
        "matched_question_score": tf.where(has_known, tf.reduce_max(masked, axis=1), 0.0),
        "answered": answered,
    }


def calibrate_threshold(scores: np.ndarray, correct: np.ndarray, keep: float = 0.95) -> float | None:
    """The cosine threshold below which the export falls back.

    The threshold keeps `keep` of the validation questions whose top answer
    was right above it: a request that scores lower than nearly every
    correctly answered question is more likely out of scope than answered
    right. (Maximising "right or declined" instead declines everything when
    fewer than half of the top answers are right, as on open-domain chat.)
    Without correctly answered validation questions there is nothing to
    calibrate on: `None`.

    >>> calibrate_threshold(np.array([0.9, 0.8, 0.4, 0.3]), np.array([True, True, False, True]), keep=0.5)
    0.8
    """
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    if not correct.any():
        return None
    return float(np.quantile(scores[correct], 1.0 - keep, method="lower"))


# A threshold withholds answers; it must separate right from wrong ones on validation beyond
# chance. Measured: on builtin:chatterbot a threshold that raised the validation accuracy of
# the answered from 24.5 % to 25.8 % (one question) lowered it on the test split (28.2 % to 27.8 %;
# measured before `mask_echoes`).
FALLBACK_MAX_P_VALUE = 0.05


def _separation_p_value(correct: np.ndarray, answered: np.ndarray) -> float:
    """One-sided Fisher exact test: are answered questions more often right than withheld ones?"""
    from scipy.stats import fisher_exact  # deferred: start-up time

    if answered.all():
        return 0.0  # withholds nothing: nothing to justify
    table = [
        [int(np.sum(correct & answered)), int(np.sum(~correct & answered))],
        [int(np.sum(correct & ~answered)), int(np.sum(~correct & ~answered))],
    ]
    return float(fisher_exact(table, alternative="greater").pvalue)


def fallback_threshold(
    scores: np.ndarray, correct: np.ndarray, keep: float, min_questions: int
) -> tuple[float | None, str]:
    """`(threshold, why)`: the calibrated fallback threshold, or `None` and the reason none is applied.

    The threshold from `calibrate_threshold` is only used when the
    calibration questions are enough to trust it and it helps on them:

    * fewer than `min_questions` calibration questions: none. (Measured on a
      503-pair FAQ, 5 runs: calibrated on 40 or 50 validation questions, it
      withheld anywhere from 8 % to 27 % of the test questions, depending on
      the seed, for 2 to 8 points more accuracy among the answered.)
    * no correctly answered calibration question: none (nothing to calibrate on).
    * if the questions it would still answer are not more accurate than all of
      them, it would withhold answers without making the answered ones better:
      none.
    * if the answered are not more often right than the withheld beyond chance
      (one-sided Fisher exact test, p < `FALLBACK_MAX_P_VALUE`): none. A gain of
      one question on validation does not carry over to new questions.

    >>> scores = np.linspace(1.0, 0.0, 20)
    >>> correct = scores > 0.5  # the score tells right from wrong
    >>> fallback_threshold(scores, correct, keep=0.9, min_questions=20)[0] > 0.5
    True
    >>> fallback_threshold(scores, correct, keep=0.9, min_questions=100)[0] is None
    True
    """
    scores, correct = np.asarray(scores, dtype=np.float64), np.asarray(correct, dtype=bool)
    count = len(scores)
    if count < min_questions:
        return None, (
            f"{count} validation questions, fewer than the {min_questions} needed to calibrate one "
            "(task.threshold_min_questions)"
        )
    threshold = calibrate_threshold(scores, correct, keep=keep)
    if threshold is None:
        return None, f"none of the {count} validation questions was answered right"
    answered = scores >= threshold
    base, selective = float(correct.mean()), float(correct[answered].mean())
    if not answered.all() and selective <= base:
        return None, (
            f"the calibrated threshold {threshold:.4f} would not raise the accuracy of the answered "
            f"validation questions ({selective:.1%} vs {base:.1%} without a fallback)"
        )
    p_value = _separation_p_value(correct, answered)
    if p_value >= FALLBACK_MAX_P_VALUE:
        return None, (
            f"the calibrated threshold {threshold:.4f} does not separate right from wrong answers on the "
            f"{count} validation questions (answered {selective:.1%} right vs {base:.1%} overall; one-sided "
            f"Fisher exact test p = {p_value:.2f}, needs < {FALLBACK_MAX_P_VALUE})"
        )
    return threshold, (
        f"keeps {keep:.0%} of the {int(correct.sum())} right answers among {count} calibration questions: "
        f"answers {answered.mean():.0%} of them, {selective:.1%} right ({base:.1%} without a fallback)"
    )


@dataclass(frozen=True)
class DeclineChoice:
    """The threshold `conformal_threshold` set and what it rests on.

    Attributes:
        threshold: decline below this retriever score; `None`: never decline.
        questions: in-domain questions it was set on.
        keep: the share of in-domain requests it is meant to answer.
        rank: the threshold is the `rank`-th smallest of their scores (0: none).
        guaranteed_keep: `1 - rank / (questions + 1)`, the share of in-domain
            requests answered on average (at least `keep`; 1 when none).
    """

    threshold: float | None
    questions: int
    keep: float
    rank: int
    guaranteed_keep: float


def questions_needed(keep: float) -> int | None:
    """Fewest in-domain questions from which `conformal_threshold` can promise `keep`; `None` for keep 1 (never).

    >>> questions_needed(0.95), questions_needed(0.8), questions_needed(1.0)
    (19, 4, None)
    """
    if keep >= 1:
        return None
    return math.ceil(1 / (1 - keep) - 1 - 1e-9)


def conformal_threshold(scores: np.ndarray, keep: float) -> DeclineChoice:
    """The score below which a request is declined, so that at least `keep` of in-domain requests are answered.

    Split conformal prediction (Vovk et al. 2005): with `n` scores of
    in-domain questions the retriever did not train on (the validation
    split), the threshold is their `k`-th smallest, `k = floor((n + 1) *
    (1 - keep))`; a new request drawn like them scores below it with
    probability at most `k / (n + 1) <= 1 - keep`, whatever the retriever.
    No off-topic examples are needed; how many off-topic requests fall below
    depends on how well the score separates them (BENCHMARKS.md, "Declining
    off-topic requests"). A question without an answer (score -inf) counts
    as the lowest score. With too few questions for the asked `keep` (fewer
    than `1 / (1 - keep) - 1`), no threshold can promise it: `None`.

    >>> choice = conformal_threshold(np.array([0.9, 0.3, 0.8, 0.5, 0.7, 0.6, 0.4, 0.2, 0.85]), keep=0.85)
    >>> choice.threshold, choice.rank, choice.guaranteed_keep
    (0.2, 1, 0.9)
    >>> conformal_threshold(np.array([0.9, 0.3]), keep=0.8).threshold is None
    True

    Args:
        scores: `[n]` the retriever's score of each question's first note.
        keep: share of in-domain requests to answer, in (0, 1].
    """
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    count = len(ordered)
    # The small epsilon keeps (n + 1) * (1 - keep) from landing just below a whole number.
    rank = math.floor((count + 1) * (1.0 - keep) + 1e-9)
    if rank < 1:
        return DeclineChoice(None, count, keep, 0, 1.0)
    return DeclineChoice(float(ordered[rank - 1]), count, keep, rank, 1.0 - rank / (count + 1))
