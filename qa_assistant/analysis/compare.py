"""Is run B really better than run A? A paired bootstrap over the test questions both answered.

Both runs must have been tested on the same questions (same data, split
seed and fold): their `predictions.jsonl` rows (one per distinct question,
with all its references) are matched by question and references. Per
question, each metric is a score (1 or 0 for a right answer, the reciprocal
rank for MRR, ...); the test resamples distinct questions, never rows (a
file with several rows per question has them resampled together), and
reports B - A with its 95 % interval and p-value
(`analysis/statistics.py`, `paired_bootstrap`).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pandas as pd

from qa_assistant.analysis.statistics import BootstrapResult, paired_bootstrap
from qa_assistant.config import load_config
from qa_assistant.errors import UserError
from qa_assistant.layout import CONFIG_FILE, PREDICTIONS_FILE, check_finished_run, split_file
from qa_assistant.metrics.baselines import tfidf_logistic_regression_scored
from qa_assistant.metrics.ranking import MRR_DEPTH, RANK_KS, predictions_frame

PREDICTIONS = PREDICTIONS_FILE
# Per-question columns that are already scores (generation writes `exact`).
_SCORE_COLUMNS = {"correct": "accuracy", "exact": "exact_match"}


def load_predictions(run_dir: str | Path) -> pd.DataFrame:
    """A finished run's `predictions.jsonl`.

    Raises:
        UserError: no such file.
    """
    path = Path(run_dir) / PREDICTIONS
    if not path.is_file():
        raise UserError(f"'{run_dir}' has no {PREDICTIONS}; expected a finished run directory")
    return pd.read_json(path, lines=True, dtype=False)


def per_question_scores(predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per-question scores whose means are the test metrics.

    `correct` gives `accuracy`, `rank` gives `recall_at_{1,5,10}`, `mrr`
    and `mrr_at_10` (an unranked reference, written as null, scores 0).
    """
    scores: dict[str, np.ndarray] = {}
    for column, metric in _SCORE_COLUMNS.items():
        if column in predictions:
            scores[metric] = predictions[column].astype(bool).to_numpy(dtype=np.float64)
    if "rank" in predictions:
        rank = pd.to_numeric(predictions["rank"], errors="coerce").astype(np.float64).to_numpy()
        ranked = np.isfinite(rank)
        for k in RANK_KS:
            scores[f"recall_at_{k}"] = (ranked & (np.nan_to_num(rank, nan=np.inf) <= k)).astype(np.float64)
        scores["mrr"] = np.where(ranked, 1.0 / np.where(ranked, rank, 1.0), 0.0)
        scores[f"mrr_at_{MRR_DEPTH}"] = np.where(scores[f"recall_at_{MRR_DEPTH}"] > 0, scores["mrr"], 0.0)
    return scores


def align(a: pd.DataFrame, b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The two runs' rows in one order, matched by (question, reference, occurrence).

    Raises:
        UserError: the runs were tested on different questions.
    """
    keys_a, keys_b = _keys(a), _keys(b)
    if collections.Counter(keys_a) != collections.Counter(keys_b):
        only_a = len(set(keys_a) - set(keys_b))
        only_b = len(set(keys_b) - set(keys_a))
        raise UserError(
            f"the runs were tested on different questions ({only_a} only in A, {only_b} only in B, "
            f"{len(keys_a)} and {len(keys_b)} in all); a paired test needs the same test split: "
            "the same data, data.fold and train.seed (or the same --test-data)"
        )
    order_b = {key: i for i, key in enumerate(keys_b)}
    return a.reset_index(drop=True), b.iloc[[order_b[key] for key in keys_a]].reset_index(drop=True)


def _keys(frame: pd.DataFrame) -> list[tuple[str, str, int]]:
    # `references` (all of a question's answers) does not depend on the model; `reference`
    # (the one credited) does where a question has several, so it is the fallback only.
    reference = "references" if "references" in frame else "reference"
    seen: collections.Counter = collections.Counter()
    keys = []
    for question, ref in zip(frame["question"].astype(str), frame[reference], strict=True):
        ref = json.dumps(ref, ensure_ascii=False) if not isinstance(ref, str) else ref
        seen[(question, ref)] += 1
        keys.append((question, ref, seen[(question, ref)]))
    return keys


def compare_runs(
    run_a: str | Path, run_b: str | Path, *, samples: int = 10_000, seed: int = 0
) -> dict[str, BootstrapResult]:
    """Paired bootstrap of every per-question metric the two runs share, resampling distinct questions.

    Args:
        run_a: the reference run directory.
        run_b: the run that may be better.
        samples: bootstrap resamples.
        seed: seeds the resampling.

    Returns:
        metric -> the test of B - A.

    Raises:
        UserError: missing predictions, or different test questions.

    Example:

    >>> compare_runs("runs/gru", "runs/lstm")["accuracy"].p_value  # doctest: +SKIP
    0.0312
    """
    a, b = align(load_predictions(run_a), load_predictions(run_b))
    return _paired(a, b, samples=samples, seed=seed)


def compare_with_tfidf(
    run_dir: str | Path, *, samples: int = 10_000, seed: int = 0
) -> dict[str, BootstrapResult]:
    """Paired bootstrap of a classification run (B) against TF-IDF + logistic regression (A).

    A is the run's own baseline (`metrics.json`'s `baseline_*`), refitted on
    the run's training split (`data/train.jsonl`) with the run's seed and
    scored per distinct test question, so both sides answer the same questions.

    Raises:
        UserError: not a finished classification run.
    """
    b = load_predictions(run_dir)
    return _paired(tfidf_predictions(run_dir, b), b, samples=samples, seed=seed)


def tfidf_predictions(run_dir: str | Path, predictions: pd.DataFrame) -> pd.DataFrame:
    """TF-IDF + logistic regression's answers to the questions of `predictions`, in its row order.

    Raises:
        UserError: the run is not a classification run.
    """
    run_dir = check_finished_run(run_dir)
    config = load_config([run_dir / CONFIG_FILE])
    if config.task.type != "classify":
        raise UserError(
            f"'{run_dir}' is a {config.task.type} run; a TF-IDF comparison needs a classification run"
        )
    train = pd.read_json(split_file(run_dir, "train"), lines=True, dtype=False)
    target = config.data.target
    questions = predictions["question"].astype(str).tolist()
    references = [[str(r) for r in refs] for refs in predictions["references"]]
    scored = tfidf_logistic_regression_scored(
        train["question"].astype(str).tolist(),
        train[target].astype(str).tolist(),
        questions,
        references,
        seed=config.train.seed,
    )
    return predictions_frame(questions, references, scored)


def _paired(a: pd.DataFrame, b: pd.DataFrame, *, samples: int, seed: int) -> dict[str, BootstrapResult]:
    """`a` and `b` answer the same questions row by row: a paired bootstrap per shared metric."""
    scores_a, scores_b = per_question_scores(a), per_question_scores(b)
    if not len(a):
        raise UserError("the runs have no test questions to compare")
    questions = a["question"].astype(str).tolist()
    return {
        metric: paired_bootstrap(
            scores_a[metric], scores_b[metric], samples=samples, seed=seed, groups=questions
        )
        for metric in scores_a
        if metric in scores_b
    }


def comparison_table(results: dict[str, BootstrapResult]) -> str:
    """A Markdown table: per metric A, B, B - A, its 95 % interval and the p-value."""
    lines = ["| metric | A | B | B - A | 95 % CI of B - A | p-value |", "|---|---:|---:|---:|---:|---:|"]
    for metric, r in results.items():
        lines.append(
            f"| {metric} | {r.mean_a:.3f} | {r.mean_b:.3f} | {r.delta:+.3f} | "
            f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] | {r.p_value:.4f} |"
        )
    return "\n".join(lines)
