import math

import numpy as np
import pytest

from qa_assistant.training.metrics import (
    classification_metrics,
    format_table,
    ranking_metrics,
    ranks_from_lists,
    ranks_from_scores,
    selective_metrics,
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


def test_selective_metrics_by_hand() -> None:
    # Sorted by score: right, wrong, right, wrong; the last is withheld.
    out = selective_metrics([0.9, 0.7, 0.5, 0.1], [True, False, True, False], [True, True, True, False])
    assert out["coverage"] == 0.75
    assert out["selective_accuracy"] == pytest.approx(2 / 3)
    # Risk of each prefix: 0/1, 1/2, 1/3, 2/4.
    assert out["aurc"] == pytest.approx((0 + 1 / 2 + 1 / 3 + 2 / 4) / 4)


def test_aurc_does_not_depend_on_the_order_of_the_input_or_of_ties() -> None:
    scores, correct = [0.2, 0.8, 0.8, 0.5], [False, True, False, True]
    everyone = [True] * 4
    # 0.8 and 0.8 enter together (1 error in 2), then 0.5 (1 in 3), then 0.2 (2 in 4).
    expected = (1 / 2 + 1 / 2 + 1 / 3 + 2 / 4) / 4
    assert selective_metrics(scores, correct, everyone)["aurc"] == pytest.approx(expected)
    flipped = selective_metrics(scores[::-1], correct[::-1], everyone)
    assert flipped["aurc"] == pytest.approx(expected)


def test_aurc_of_a_constant_score_is_the_error_rate_and_a_perfect_ranking_is_lower() -> None:
    correct = [True, True, False, True]
    assert selective_metrics([0.3] * 4, correct, [True] * 4)["aurc"] == pytest.approx(0.25)
    perfect = selective_metrics([0.9, 0.8, 0.1, 0.7], correct, [True] * 4)["aurc"]
    assert perfect == pytest.approx((0 + 0 + 0 + 1 / 4) / 4)


def test_selective_metrics_when_nothing_is_answered_or_asked() -> None:
    out = selective_metrics([0.4, 0.2], [True, False], [False, False])
    assert (out["coverage"], out["selective_accuracy"]) == (0.0, 0.0)
    assert out["aurc"] == pytest.approx((0 + 1 / 2) / 2)
    assert selective_metrics([], [], []) == {"coverage": 0.0, "selective_accuracy": 0.0, "aurc": 0.0}
