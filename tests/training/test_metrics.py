import math

import numpy as np
import pytest

from qa_assistant.training.metrics import (
    classification_metrics,
    format_table,
    ranking_metrics,
    ranks_from_lists,
    ranks_from_scores,
)


def test_ranking_metrics() -> None:
    out = ranking_metrics([1, 2, 6, math.inf])
    assert out["recall_at_1"] == 0.25
    assert out["recall_at_5"] == 0.5
    assert out["recall_at_10"] == 0.75
    assert out["mrr"] == pytest.approx((1 + 0.5 + 1 / 6) / 4)


def test_ranks_from_scores_ties_are_pessimistic_and_unseen_is_inf() -> None:
    scores = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])
    assert ranks_from_scores(scores, np.array([0, 1, -1])).tolist() == [1.0, 2.0, math.inf]


def test_ranks_from_lists() -> None:
    assert ranks_from_lists([["a", "b"], ["b", "c"]], ["b", "a"]).tolist() == [2.0, math.inf]


def test_classification_metrics_macro_over_reference_classes() -> None:
    out = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "z"])
    assert out["accuracy"] == 0.5
    assert out["recall_macro"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["precision_macro"] == pytest.approx((1 + 0.5 + 0) / 3)


def test_empty_inputs_give_zeros() -> None:
    assert classification_metrics([], [])["accuracy"] == 0.0
    assert ranking_metrics([])["mrr"] == 0.0


def test_format_table() -> None:
    table = format_table({"gru": {"accuracy": 0.5, "num_test": 40}, "baseline": {"accuracy": 0.25}})
    assert table.splitlines() == [
        "| model | accuracy | num_test |",
        "|---|---:|---:|",
        "| gru | 0.500 | 40 |",
        "| baseline | 0.250 |  |",
    ]
