"""Declining off-topic requests: when a grounded LM should say it does not know.

A grounded LM (`lm.grounding`) writes its reply from the retriever's best
answers of the user's data. Asked about something the data do not cover
("who wrote Hamlet?" to a building-permit FAQ), it still gets three notes,
the least unrelated answers, and a 135M-parameter model writes a confident
reply from them. The retriever's score of the first note says how close the
request is to anything the user wrote; `lm.decline_below` answers
`lm.decline_answer` below a threshold instead.

`auto` sets the threshold from the validation questions alone, which are
in-domain by construction: split conformal prediction (Vovk et al. 2005;
Angelopoulos & Bates 2021). With `n` validation scores, the threshold is
their `k`-th smallest, `k = floor((n + 1) * (1 - keep))`; a new request
drawn like the validation questions scores below it with probability at most
`k / (n + 1) <= 1 - keep`, whatever the retriever and the data. So at least
`lm.decline_keep` of in-domain requests are answered on average over splits;
how many off-topic ones are declined depends on how well the retriever's
score separates them, which BENCHMARKS.md measures ("Declining off-topic
requests"). No off-topic examples are needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

BATCH = 64  # validation questions retrieved for per call


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

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def conformal_threshold(scores: np.ndarray, keep: float) -> DeclineChoice:
    """The score below which a request is declined, so that at least `keep` of in-domain requests are answered.

    `scores` are the first-note scores of in-domain questions the retriever
    did not train on. A question without a note (score -inf) counts as the
    lowest score. With too few questions for the asked `keep` (fewer than
    `1 / (1 - keep) - 1`), no threshold can promise it: `None`, never decline.

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


def first_note_scores(retriever: Any, questions: list[str]) -> np.ndarray:
    """`[n]` the retriever's score of each question's best answer (`-inf` where it has none)."""
    scores = []
    for start in range(0, len(questions), BATCH):
        _, found = retriever.retrieve(tf.constant(questions[start : start + BATCH]), 1)
        scores += found.numpy()[:, 0].astype(np.float64).tolist()
    return np.asarray(scores, dtype=np.float64)


def calibrate(retriever: Any, frame: pd.DataFrame, keep: float) -> DeclineChoice:
    """`conformal_threshold` on the distinct questions of `frame` (the validation split) under `retriever`."""
    questions = frame["question"].drop_duplicates().tolist()
    return conformal_threshold(first_note_scores(retriever, questions), keep)
