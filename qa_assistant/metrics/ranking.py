"""Held-out metrics shared by every task, and their printed table.

Every task scores each distinct test question once. A question asked in
several rows (e.g. "tell me a joke" with 30 answers) has all their answers
as its references, and a hit on any of them counts: scoring rows instead
would cap recall@1 below 1 for a model that cannot be more right.

Ranking metrics take the 1-based rank of a question's best-ranked reference
among the model's answers (`inf` when no reference is ranked at all, e.g. a
label never seen in training, or beyond the `top_k` an export returns).
One tie rule for every path: a reference ranks behind every other answer
that scores at least as high (pessimistic, so a constant model never looks
good), while ties among its own references do not count against it (any of
them is a hit). Accuracy scores the answer the model gives (the first of
tied best columns, as `argmax` and a served model pick it), so on an exact
tie between a reference and another answer it can count a hit that recall@1
does not; the two agree wherever the best score is unique.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

RANK_KS = (1, 5, 10)
MRR_DEPTH = 10  # `mrr_at_10`: the reciprocal rank, 0 beyond this rank


def group_references(
    questions: Sequence[str], references: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Distinct questions (first-seen order), each with its distinct references.

    A question's references are ordered most frequent first (ties: first
    seen), so `references[0]` is the answer it most often has: the class it
    counts for when the model misses (`counted_references`).

    >>> group_references(["q", "p", "q", "q"], ["a", "x", "b", "b"])
    (['q', 'p'], [['b', 'a'], ['x']])
    """
    counts: dict[str, collections.Counter] = {}
    for question, reference in zip(questions, references, strict=True):
        counts.setdefault(question, collections.Counter())[reference] += 1
    # Counter.most_common keeps first-seen order among equal counts.
    return list(counts), [[r for r, _ in c.most_common()] for c in counts.values()]


def counted_references(references: Sequence[Sequence[str]], predicted: Sequence[str]) -> list[str]:
    """The one class each question counts for: its prediction when right, else its first reference."""
    return [
        p if p in refs else (refs[0] if refs else "")
        for refs, p in zip(_as_lists(references), predicted, strict=True)
    ]


def _as_lists(references: Sequence[str | Sequence[str]]) -> list[list[str]]:
    """Per-question reference lists; a bare string is one reference."""
    return [[r] if isinstance(r, str) else list(r) for r in references]


def ranking_metrics(ranks: Sequence[float], depth: int | None = None) -> dict[str, float]:
    """Recall@k and MRR from each question's best rank.

    Args:
        ranks: 1-based rank of each question's best-ranked reference (`inf`: not ranked).
        depth: `None` when the ranks come from a full ranking of every answer;
            otherwise how many answers were seen (an export's `top_k`), and
            only what that many answers determine is reported.

    Returns:
        With a full ranking: `recall_at_{1,5,10}`, `mrr` and `mrr_at_10`.
        With `depth` K: `recall_at_k` for the k of 1, 5, 10 up to K (and
        `recall_at_K` itself when K < 10), `mrr_at_10` when K >= 10, else
        `mrr_at_K`: never a name that claims more than K answers show.
    """
    r = np.asarray(ranks, dtype=np.float64)
    ks = list(RANK_KS) if depth is None else [k for k in RANK_KS if k <= depth]
    if depth is not None and depth < MRR_DEPTH and depth not in ks:
        ks.append(depth)
    mrr_depth = MRR_DEPTH if depth is None else min(MRR_DEPTH, depth)

    def mean(values: np.ndarray) -> float:
        return float(np.mean(values)) if r.size else 0.0

    reciprocal = np.where(np.isfinite(r), 1.0 / np.where(np.isfinite(r), r, 1.0), 0.0)
    out = {f"recall_at_{k}": mean(r <= k) for k in ks}
    if depth is None:
        out["mrr"] = mean(reciprocal)
    out[f"mrr_at_{mrr_depth}"] = mean(np.where(r <= mrr_depth, reciprocal, 0.0))
    return out


def selective_metrics(
    scores: Sequence[float], correct: Sequence[bool], answered: Sequence[bool]
) -> dict[str, float]:
    """`coverage`, `selective_accuracy` and `aurc` of answers that may be withheld (a fallback).

    Args:
        scores: confidence of each question's best answer (higher = surer).
        correct: whether that best answer is right.
        answered: whether it was given (false where the fallback was given instead).

    `coverage` is the share answered, `selective_accuracy` the share of the
    answered that is right (0 when none is). `aurc`, the area under the
    risk-coverage curve, does not depend on where the threshold is: for each
    question, the risk is the error rate among the questions scoring at least
    as high (those a threshold at its score would answer); `aurc` is the mean
    of these risks. Sorting by score, that is the error rate of each prefix
    averaged over the prefixes, with tied scores entering together (a
    threshold cannot split them), so a constant score gets exactly the error
    rate and a perfect ranking `sum_{i=k+1..n} (i-k)/i / n` for k right of n.
    Lower is better.

    >>> out = selective_metrics([0.9, 0.8, 0.1], [True, False, True], [True, True, False])
    >>> {k: round(v, 4) for k, v in out.items()}  # aurc = (0/1 + 1/2 + 1/3) / 3
    {'coverage': 0.6667, 'selective_accuracy': 0.5, 'aurc': 0.2778}
    """
    s = np.asarray(scores, dtype=np.float64)
    right = np.asarray(correct, dtype=bool)
    given = np.asarray(answered, dtype=bool)
    if s.size == 0:
        return {"coverage": 0.0, "selective_accuracy": 0.0, "aurc": 0.0}
    order = np.argsort(-s, kind="stable")
    errors = np.cumsum(~right[order])
    # The last position of each run of equal scores: where a threshold at that score cuts.
    sorted_scores = s[order]
    cut = np.searchsorted(-sorted_scores, -sorted_scores, side="right") - 1
    risks = errors[cut] / (cut + 1.0)
    return {
        "coverage": float(given.mean()),
        "selective_accuracy": float(right[given].mean()) if given.any() else 0.0,
        "aurc": float(risks.mean()),
    }


def classification_metrics(
    references: Sequence[str | Sequence[str]], predictions: Sequence[str]
) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1, one vote per distinct question.

    Args:
        references: each question's reference labels (a bare string is one).
        predictions: each question's predicted label.

    A question is right when its prediction is among its references. For the
    macro scores it counts for one class (`counted_references`): the
    predicted one when right (a true positive there), otherwise its most
    frequent reference (a false negative there, and a false positive of the
    predicted class). With one reference per question these are the usual
    single-label scores. The macro average runs over the classes that some
    question counts for or some prediction names (scikit-learn's default), not
    every class the model knows: a large answer set would otherwise dilute it
    with classes neither the test split nor the model's answers touch. A wrong
    prediction of a class no test question asks about is a false positive
    there (precision 0), as one of an asked class is.
    """
    from sklearn.metrics import precision_recall_fscore_support  # deferred: start-up time

    if len(references) == 0:
        return {"accuracy": 0.0, "precision_macro": 0.0, "recall_macro": 0.0, "f1_macro": 0.0}
    lists = _as_lists(references)
    truth = counted_references(lists, predictions)
    precision, recall, f1, _ = precision_recall_fscore_support(
        truth,
        list(predictions),
        labels=sorted(set(truth) | set(predictions)),
        average="macro",
        zero_division=0,
    )
    right = [p in refs for p, refs in zip(predictions, lists, strict=True)]
    return {
        "accuracy": float(np.mean(right)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
    }


@dataclass
class Scored:
    """Each question's best answer and how its references rank (`rank_candidates`, `rank_lists`)."""

    predicted: list[str]  # the best-scoring answer
    score: np.ndarray  # its score
    rank: np.ndarray  # 1-based rank of the best-ranked reference; inf if none is ranked
    correct: np.ndarray  # whether the best answer is one of the references


def rank_candidates(
    scores: np.ndarray, candidates: Sequence[str], references: Sequence[Sequence[str]]
) -> Scored:
    """Scores every question against every candidate answer (a full ranking).

    Args:
        scores: `[questions, candidates]`, higher is better.
        candidates: the answer (or label) of each column.
        references: each question's references; those not among the
            candidates can never be ranked.
    """
    index = {c: i for i, c in enumerate(candidates)}
    targets = [[index[r] for r in refs if r in index] for refs in _as_lists(references)]
    scores = np.asarray(scores).reshape(len(targets), len(candidates))
    best = scores.argmax(axis=1) if len(targets) and len(candidates) else np.zeros(len(targets), dtype=int)
    predicted = [candidates[i] for i in best] if len(candidates) else [""] * len(targets)
    return Scored(
        predicted=predicted,
        score=scores.max(axis=1) if scores.size else np.zeros(len(targets)),
        rank=best_ranks(scores, targets),
        correct=np.asarray([int(b) in set(t) for b, t in zip(best, targets, strict=True)], dtype=bool),
    )


def best_ranks(scores: np.ndarray, targets: Sequence[Sequence[int]]) -> np.ndarray:
    """1-based rank of each row's best-scoring target among its scores; `inf` where it has none.

    The module's tie rule: `1 +` the number of non-target columns scoring at
    least as high as the best target.
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_target = np.zeros(scores.shape, dtype=bool)
    for row, columns in enumerate(targets):
        is_target[row, list(columns)] = True
    has_target = is_target.any(axis=1)
    best = np.where(is_target, scores, -np.inf).max(axis=1, initial=-np.inf)
    ahead = ((scores >= best[:, None]) & ~is_target).sum(axis=1)
    return np.where(has_target, 1.0 + ahead, math.inf)


def ranks_from_scores(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """`best_ranks` with one target per row; `inf` where target < 0."""
    return best_ranks(scores, [[int(t)] if t >= 0 else [] for t in np.asarray(target_index).reshape(-1)])


def rank_lists(
    ranked: Sequence[Sequence[str]],
    ranked_scores: Sequence[Sequence[float]],
    references: Sequence[Sequence[str]],
) -> Scored:
    """`Scored` from the ranked answers an export returns (its `top_k`), with the same tie rule.

    Only the returned answers are seen: a reference not among them is
    unranked, and so is one beyond the list's end in a full ranking.
    """
    ranks, correct, predicted, best = [], [], [], []
    for answers, values, refs in zip(ranked, ranked_scores, _as_lists(references), strict=True):
        answers, values, refs = list(answers), np.asarray(values, dtype=np.float64), set(refs)
        hits = np.asarray([a in refs for a in answers], dtype=bool)
        if hits.any():
            top = values[hits].max()
            ranks.append(1.0 + float(((values >= top) & ~hits).sum()))
        else:
            ranks.append(math.inf)
        predicted.append(answers[0] if answers else "")
        best.append(float(values[0]) if len(values) else 0.0)
        correct.append(bool(hits[0]) if len(hits) else False)
    return Scored(predicted, np.asarray(best), np.asarray(ranks, dtype=np.float64), np.asarray(correct, bool))


def predictions_frame(
    questions: Sequence[str], references: Sequence[Sequence[str]], scored: Scored
) -> pd.DataFrame:
    """`predictions.jsonl`: one row per distinct question with all its references.

    `reference` is the one the question counts for (`counted_references`):
    what its confusion-matrix row and the macro scores use.
    """
    return pd.DataFrame(
        {
            "question": list(questions),
            "references": [list(r) for r in references],
            "reference": counted_references(references, scored.predicted),
            "predicted": scored.predicted,
            "score": scored.score,
            "rank": _whole_ranks(scored.rank),
            "correct": scored.correct,
        }
    )


def _whole_ranks(ranks: np.ndarray) -> pd.arrays.IntegerArray:
    """Ranks as integers, missing (null in JSON) where no reference is ranked."""
    ranked = np.isfinite(ranks)
    return pd.arrays.IntegerArray(np.where(ranked, ranks, 0).astype(np.int64), ~ranked)


def format_table(rows: Mapping[str, Mapping[str, float | str]], keys: Sequence[str] | None = None) -> str:
    """A Markdown table: one row per model, one column per metric."""
    if keys is None:
        keys = list(dict.fromkeys(k for metrics in rows.values() for k in metrics))
    header = "| model | " + " | ".join(keys) + " |"
    rule = "|---|" + "---:|" * len(keys)
    lines = [header, rule]
    for name, metrics in rows.items():
        cells = [_fmt(metrics.get(k)) for k in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_columns(columns: Mapping[str, Sequence[Any]], rows: int) -> str:
    """A Markdown table of the first `rows` rows of named columns (sample answers, say), cells as text."""

    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for i in range(min(rows, len(next(iter(columns.values()))))):
        lines.append("| " + " | ".join(cell(values[i]) for values in columns.values()) + " |")
    return "\n".join(lines)


def _fmt(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) or (float(value).is_integer() and abs(value) > 1):
        return str(int(value))
    return f"{value:.3f}"
