"""Hard negatives for the dual encoder: for each question, a wrong answer that looks right.

In-batch negatives are random answers, mostly easy to tell apart. A hard
negative is the bank answer ranked highest for the question among the
answers that are not right for it: near-misses. Two rankers
(`task.hard_negatives`):

* `tfidf`: TF-IDF over the training pairs (the answer documents are the
  answers plus their training questions, as in the TF-IDF baseline): DPR's
  BM25 negatives (Karpukhin et al. 2020), answers that share the
  question's words;
* `model`: the dual encoder itself as it starts training (a pretrained or
  `--init-from` encoder; a random one ranks at random): answers that are
  close in *its* space, the confusions fine-tuning has to undo (the static
  form of ANCE's negatives, Xiong et al. 2021, mined once instead of
  refreshed during training).

Either is mined once, before the first epoch, for the training and the
validation questions alike, so the run is deterministic and resumes
exactly. Every answer the same question has anywhere in the data is
excluded, so an answer that is right for it in another row is never its
negative; so is, with shared towers, an answer with the question's own
tokens ("how are you doing?" as the answer of another turn), which has the
question's own vector and could not be pushed away (`RetrievalTask._echoes`).

An answer the data does not pair with the question can still answer it: an
FAQ's answers overlap, and the nearest wrong answer is often such a false
negative, which training then pushes away. `task.hard_negative_ceiling`
skips every candidate that scores above that share of the score of the
row's own answer (positive-aware mining, NV-Retriever's TopK-PercPos,
Moreira et al. 2024): the negative is the best candidate clearly below
the right answer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np

from qa_assistant.metrics.baselines import tfidf_answer_index

_CHUNK = 1024  # questions scored against the bank at a time


Scorer = Callable[[list[str]], np.ndarray]  # questions -> [questions, bank] scores


def tfidf_scorer(train_pairs: Iterable[tuple[str, str]], bank: list[str]) -> Scorer:
    """Scores questions against `bank` by TF-IDF cosine; documents: each answer plus its training questions."""
    pairs = list(train_pairs)
    vectorizer, answer_vectors = tfidf_answer_index([q for q, _ in pairs], [a for _, a in pairs], bank)
    return lambda questions: (vectorizer.transform(questions) @ answer_vectors.T).toarray()


def mine_hard_negatives(
    questions: list[str],
    own_answers: list[str],
    scorer: Scorer,
    bank: list[str],
    excluded: Mapping[str, set[str]],
    ceiling: float | None = None,
) -> list[str]:
    """One hard negative per question: its best-scoring bank answer that is not excluded for it.

    Args:
        questions: the questions to mine for (training or validation rows).
        own_answers: each row's answer (never its negative).
        scorer: `[questions, bank]` scores of a list of questions
            (`tfidf_scorer`, or the model's cosine similarities).
        bank: every candidate answer.
        excluded: question -> answers that are never its negative (every answer it
            has in the data; the task adds the answers that repeat it).
        ceiling: skip candidates scoring above `ceiling` times the score of
            the row's own answer (likely false negatives); `None` skips none.
            No cap applies where the own answer scores 0 or less (the ranker
            sees nothing of the right answer).

    Returns:
        One bank answer per question (the first bank answer not excluded for it
        when every candidate scores the same; the lowest-scoring wrong one
        when every wrong one is above the ceiling).

    Example:

    >>> bank = ["We open at 9.", "It costs 10 euros.", "We are in Lisbon."]
    >>> pairs = [("when do you open", bank[0]), ("how much is it", bank[1]), ("where are you", bank[2])]
    >>> mine_hard_negatives(["when do you open"], [bank[0]], tfidf_scorer(pairs, bank), bank, {})
    ['We are in Lisbon.']
    """
    position = {answer: i for i, answer in enumerate(bank)}
    negatives = []
    for start in range(0, len(questions), _CHUNK):  # a dense [questions, bank] matrix could be GBs
        chunk = questions[start : start + _CHUNK]
        scores = np.asarray(scorer(chunk))
        for question, own, row in zip(chunk, own_answers[start : start + _CHUNK], scores, strict=True):
            never = {own, *excluded.get(question, ())}
            own_score = row[position[own]] if own in position else 0.0
            cap = ceiling * own_score if ceiling is not None and own_score > 0 else np.inf
            # Stable: equal scores keep bank order, so mining is deterministic.
            order = np.argsort(-row, kind="stable")
            chosen = next((i for i in order if row[i] <= cap and bank[i] not in never), None)
            if chosen is None:  # every candidate is above the cap (or the whole bank is excluded)
                chosen = next((i for i in order[::-1] if bank[i] not in never), order[0])
            negatives.append(bank[chosen])
    return negatives
