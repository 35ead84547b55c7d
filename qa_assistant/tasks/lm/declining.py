"""Declining off-topic requests: when a grounded LM should say it does not know.

A grounded LM (`lm.grounding`) writes its reply from the retriever's best
answers of the user's data. Asked about something the data do not cover
("who wrote Hamlet?" to a building-permit FAQ), it still gets three notes,
the least unrelated answers, and a 135M-parameter model writes a confident
reply from them. The retriever's score of the first note says how close the
request is to anything the user wrote; `lm.decline_below` answers
`lm.decline_answer` below a threshold instead.

`auto` sets the threshold from the validation questions alone, which are
in-domain by construction, by split conformal prediction
(`tasks/retrieval/bank.py`, `conformal_threshold`, which a retrieval run's
fallback threshold uses too, `task.decline_keep`): at least
`lm.decline_keep` of in-domain requests are answered on average over
splits; how many off-topic ones are declined depends on how well the
retriever's score separates them, which BENCHMARKS.md measures ("Declining
off-topic requests"). No off-topic examples are needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.tasks.retrieval.bank import DeclineChoice, conformal_threshold

BATCH = 64  # validation questions retrieved for per call


def first_notes(retriever: Any, questions: list[str]) -> tuple[list[str], np.ndarray]:
    """Each question's best answer under `retriever` (`""` where it has none) and its `[n]` score (`-inf` then)."""
    notes, scores = [], []
    for start in range(0, len(questions), BATCH):
        found, found_scores = retriever.retrieve(tf.constant(questions[start : start + BATCH]), 1)
        notes += [note.decode("utf-8") for note in found.numpy()[:, 0]]
        scores += found_scores.numpy()[:, 0].astype(np.float64).tolist()
    return notes, np.asarray(scores, dtype=np.float64)


def first_note_scores(retriever: Any, questions: list[str]) -> np.ndarray:
    """`[n]` the retriever's score of each question's best answer (`-inf` where it has none)."""
    return first_notes(retriever, questions)[1]


def calibrate(retriever: Any, frame: pd.DataFrame, keep: float) -> DeclineChoice:
    """`conformal_threshold` on the distinct questions of `frame` (the validation split) under `retriever`."""
    questions = frame["question"].drop_duplicates().tolist()
    return conformal_threshold(first_note_scores(retriever, questions), keep)
