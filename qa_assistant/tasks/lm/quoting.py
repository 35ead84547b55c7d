"""Quote or generate: when a grounded LM should answer with the user's own answer word for word.

A grounded LM (`lm.grounding`) sees the retriever's best answers as notes
and writes a reply from them. Where the retriever is sure of its first note,
that note *is* the user's answer, and a paraphrase can only lose to it; where
it hesitates, the LM, reading all the notes, picks the right one more often
than the retriever's first choice. Measured on a 503-pair FAQ (BENCHMARKS.md,
"The 503-pair FAQ"): the retriever's top answer scores ROUGE-L 1.000 where
it is right, the grounded LM 0.455; where the right answer is 2nd to 5th,
the LM 0.315 against the retriever's 0.137.

`lm.quote_above` routes each request by the retriever's score of its first
note: at or above the threshold the reply is that note, below it the LM
writes one (`tasks/lm/generator.py`). `auto` chooses the threshold after
training (`LanguageModelTask.finalize`) on the validation questions: the one
whose routed replies have the best mean ROUGE-L there (`choose_threshold`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.metrics.generation import rouge_l_scores

BATCH = 16  # validation questions answered per call


@dataclass(frozen=True)
class QuoteChoice:
    """The threshold `choose_threshold` picked and what it gave on the questions it was chosen on.

    Attributes:
        threshold: quote at or above this retriever score; `None`: never quote.
        questions: questions it was chosen on.
        quoted_share: share of them that it quotes.
        routed_rouge_l: mean ROUGE-L of the routed replies.
        generated_rouge_l: mean ROUGE-L of the LM's replies alone (never quoting).
        quoted_rouge_l: mean ROUGE-L of the first notes alone (always quoting).
    """

    threshold: float | None
    questions: int
    quoted_share: float
    routed_rouge_l: float
    generated_rouge_l: float
    quoted_rouge_l: float


def choose_threshold(scores: np.ndarray, quote_rouge: np.ndarray, generated_rouge: np.ndarray) -> QuoteChoice:
    """The retriever-score threshold whose routed replies have the best mean ROUGE-L.

    A question with score `s >= t` is answered by its first note (ROUGE-L
    `quote_rouge`), the others by the LM (`generated_rouge`). Candidates are
    the questions' own scores, and "never quote"; among equally good ones the
    highest threshold wins (quoting as little as the data allow). A question
    without a note (score -inf) is never quoted.

    >>> choice = choose_threshold(np.array([0.9, 0.8, 0.3]), np.array([1.0, 1.0, 0.0]), np.array([0.4, 0.5, 0.3]))
    >>> choice.threshold, round(choice.routed_rouge_l, 3), round(choice.quoted_share, 3)
    (0.8, 0.767, 0.667)

    Args:
        scores: `[n]` the retriever's score of each question's first note.
        quote_rouge: `[n]` ROUGE-L of that note against the references.
        generated_rouge: `[n]` ROUGE-L of the LM's reply.
    """
    scores = np.asarray(scores, dtype=np.float64)
    quote_rouge = np.asarray(quote_rouge, dtype=np.float64)
    generated_rouge = np.asarray(generated_rouge, dtype=np.float64)
    count = len(scores)
    if count == 0:
        return QuoteChoice(None, 0, 0.0, 0.0, 0.0, 0.0)
    best_threshold, best = None, float(generated_rouge.mean())
    # From the highest score down: a lower threshold must be strictly better to win.
    for threshold in sorted({float(s) for s in scores if math.isfinite(s)}, reverse=True):
        routed = float(np.where(scores >= threshold, quote_rouge, generated_rouge).mean())
        if routed > best:
            best_threshold, best = threshold, routed
    quoted = scores >= best_threshold if best_threshold is not None else np.zeros(count, bool)
    return QuoteChoice(
        threshold=best_threshold,
        questions=count,
        quoted_share=float(quoted.mean()),
        routed_rouge_l=best,
        generated_rouge_l=float(generated_rouge.mean()),
        quoted_rouge_l=float(np.where(np.isfinite(scores), quote_rouge, 0.0).mean()),
    )


def calibrate(generator: Any, frame: pd.DataFrame) -> QuoteChoice:
    """Chooses the quote threshold of a grounded generator on `frame`'s questions (the validation split).

    Each distinct question is answered once by the LM, never quoting (so
    `generator` must have no threshold of its own), and its first grounding
    note and that note's score are read from the same call; both replies are
    scored by ROUGE-L against all of the question's answers.

    Args:
        generator: a grounded `LanguageModelGenerator` without `quote_above`.
        frame: rows with `question` and `answer`.
    """
    grouped = frame.groupby("question", sort=False)["answer"].agg(list)
    questions, references = grouped.index.tolist(), grouped.tolist()
    generated, notes, scores = [], [], []
    for start in range(0, len(questions), BATCH):
        out = generator.answer(tf.constant(questions[start : start + BATCH]))
        generated += [a.decode("utf-8") for a in out["answer"].numpy()]
        notes += [a.decode("utf-8") for a in out["grounding_answers"].numpy()[:, 0]]
        scores += out["grounding_scores"].numpy()[:, 0].tolist()
    if not questions:
        return choose_threshold(np.zeros(0), np.zeros(0), np.zeros(0))
    return choose_threshold(
        np.asarray(scores), rouge_l_scores(references, notes), rouge_l_scores(references, generated)
    )
