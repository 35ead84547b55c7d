"""Held-out metrics shared by every task, and their printed table.

Ranking metrics take the 1-based rank of the reference answer among the
model's answers (`inf` when it is not ranked at all, e.g. a label never seen
in training, or beyond the `top_k` an export returns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

RANK_KS = (1, 5, 10)


def ranking_metrics(ranks: Sequence[float]) -> dict[str, float]:
    """`recall_at_{1,5,10}` and `mrr` from the reference answers' ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return {**{f"recall_at_{k}": 0.0 for k in RANK_KS}, "mrr": 0.0}
    out = {f"recall_at_{k}": float(np.mean(r <= k)) for k in RANK_KS}
    out["mrr"] = float(np.mean(np.where(np.isfinite(r), 1.0 / r, 0.0)))
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


def classification_metrics(references: Sequence[str], predictions: Sequence[str]) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 over the classes present in `references`.

    Averaging over the reference classes (not every class the model knows)
    keeps a large answer set from diluting the macro scores with classes the
    test split never asks about.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    if len(references) == 0:
        return {"accuracy": 0.0, "precision_macro": 0.0, "recall_macro": 0.0, "f1_macro": 0.0}
    labels = sorted(set(references))
    precision, recall, f1, _ = precision_recall_fscore_support(
        list(references), list(predictions), labels=labels, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "precision_macro": float(precision),
        "recall_macro": float(recall),
        "f1_macro": float(f1),
    }


def ranks_from_scores(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """1-based rank of each row's target among its scores; `inf` where target < 0.

    Ties count against the target (a pessimistic rank), so a constant model
    never looks good.
    """
    scores = np.asarray(scores)
    target_index = np.asarray(target_index)
    valid = target_index >= 0
    safe = np.where(valid, target_index, 0)
    target_scores = scores[np.arange(len(scores)), safe]
    ahead = (scores >= target_scores[:, None]).sum(axis=1)
    return np.where(valid, ahead.astype(np.float64), math.inf)


def ranks_from_lists(ranked: Sequence[Sequence[str]], references: Sequence[str]) -> np.ndarray:
    """1-based position of each reference in its ranked list; `inf` if absent."""
    out = []
    for answers, reference in zip(ranked, references, strict=True):
        answers = list(answers)
        out.append(answers.index(reference) + 1.0 if reference in answers else math.inf)
    return np.asarray(out, dtype=np.float64)


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


def _fmt(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (float(value).is_integer() and abs(value) >= 1):
        return str(int(value))
    return f"{value:.3f}"
