import json
import math

import numpy as np
import pytest

from qa_assistant.metrics.ranking import (
    classification_metrics,
    format_columns,
    format_table,
    group_references,
    predictions_frame,
    rank_candidates,
    rank_lists,
    ranking_metrics,
    ranks_from_scores,
    selective_metrics,
)


def test_ranking_metrics_of_a_full_ranking() -> None:
    out = ranking_metrics([1, 2, 6, 12, math.inf])
    assert set(out) == {"recall_at_1", "recall_at_5", "recall_at_10", "mrr", "mrr_at_10"}
    assert out["recall_at_1"] == 0.2
    assert out["recall_at_5"] == 0.4
    assert out["recall_at_10"] == 0.6
    assert out["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 6 + 1 / 12) / 5)
    assert out["mrr_at_10"] == pytest.approx((1 + 1 / 2 + 1 / 6) / 5)  # rank 12 scores 0


def test_ranking_metrics_of_a_top_k_list_are_named_for_what_it_shows() -> None:
    ranks = [1, 3, math.inf]
    assert ranking_metrics(ranks, depth=3) == pytest.approx(
        {"recall_at_1": 1 / 3, "recall_at_3": 2 / 3, "mrr_at_3": (1 + 1 / 3) / 3}
    )
    at_ten = ranking_metrics(ranks, depth=10)
    assert set(at_ten) == {"recall_at_1", "recall_at_5", "recall_at_10", "mrr_at_10"}  # no full `mrr`
    assert at_ten["mrr_at_10"] == ranking_metrics(ranks)["mrr_at_10"]


def test_group_references_puts_the_most_frequent_reference_first() -> None:
    questions = ["joke", "hi", "joke", "joke", "joke"]
    answers = ["pun", "hello", "knock knock", "knock knock", "pun"]
    assert group_references(questions, answers) == (["joke", "hi"], [["pun", "knock knock"], ["hello"]])
    assert group_references(questions, ["pun", "hello", "pun", "knock knock", "knock knock"])[1][0] == [
        "pun",
        "knock knock",
    ]  # equal counts: first seen first
    assert group_references(["joke", "joke", "joke"], ["a", "b", "b"])[1] == [["b", "a"]]


def test_a_hit_on_any_reference_counts_once_per_question() -> None:
    # Rows (joke, a), (joke, b), (joke, b), (hi, c): scored per row, one answer for "joke" can
    # match at most 2 of its 3 rows, so recall@1 could not pass 3/4; per question it reaches 1.
    questions, references = group_references(["joke", "joke", "joke", "hi"], ["a", "b", "b", "c"])
    candidates = ["a", "b", "c", "d"]
    scores = np.array([[0.1, 0.6, 0.2, 0.1], [0.0, 0.1, 0.8, 0.1]])
    scored = rank_candidates(scores, candidates, references)
    assert scored.predicted == ["b", "c"]
    assert scored.rank.tolist() == [1.0, 1.0]
    assert ranking_metrics(scored.rank)["recall_at_1"] == 1.0
    frame = predictions_frame(questions, references, scored)
    assert frame["references"].tolist() == [["b", "a"], ["c"]]
    assert frame["correct"].tolist() == [True, True]
    # The best-ranked reference decides: "a" is behind only "c" (rank 2), "b" would be rank 4.
    worse = rank_candidates(np.array([[0.3, 0.1, 0.5, 0.2], [0.0, 0.1, 0.8, 0.1]]), candidates, references)
    assert worse.rank.tolist() == [2.0, 1.0]
    assert worse.correct.tolist() == [False, True]
    assert ranking_metrics(worse.rank)["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert predictions_frame(questions, references, worse)["reference"].tolist() == ["b", "c"]


def test_ties_count_against_the_reference_but_not_among_its_references() -> None:
    candidates = ["a", "b", "c"]
    scores = np.array([[0.5, 0.3, 0.2], [0.4, 0.4, 0.2], [0.4, 0.4, 0.2], [0.1, 0.2, 0.7]])
    references = [["a"], ["b"], ["a", "b"], ["z"]]
    assert rank_candidates(scores, candidates, references).rank.tolist() == [1.0, 2.0, 1.0, math.inf]
    assert ranks_from_scores(scores[:2], np.array([0, 1])).tolist() == [1.0, 2.0]
    assert ranks_from_scores(scores[:1], np.array([-1])).tolist() == [math.inf]


def test_the_tie_rule_is_the_same_on_a_full_ranking_and_on_an_exports_top_k() -> None:
    rng = np.random.default_rng(0)
    candidates = [f"answer {i}" for i in range(12)]
    scores = rng.choice([0.1, 0.2, 0.3, 0.5], size=(200, 12))  # many exact ties
    references = [list(rng.choice(candidates, size=rng.integers(1, 3), replace=False)) for _ in scores]
    full = rank_candidates(scores, candidates, references)
    # An export's list: sorted by score, ties in bank order (as tf.math.top_k orders them).
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked = [[candidates[i] for i in row] for row in order]
    listed = rank_lists(ranked, np.take_along_axis(scores, order, axis=1), references)
    assert listed.rank.tolist() == full.rank.tolist()
    assert listed.predicted == full.predicted
    assert listed.correct.tolist() == full.correct.tolist()
    # Cut to 5 answers: a reference beyond the list is unranked; within it, ranks agree unless
    # an unreturned answer ties the list's last score exactly (it cannot be seen).
    cut = rank_lists([r[:5] for r in ranked], np.take_along_axis(scores, order, axis=1)[:, :5], references)
    last = np.take_along_axis(scores, order, axis=1)[:, 4]
    unseen_tie = (scores == last[:, None]).sum(axis=1) > (
        np.take_along_axis(scores, order, axis=1)[:, :5] == last[:, None]
    ).sum(axis=1)
    clear = ~unseen_tie
    assert np.array_equal(np.where(full.rank <= 5, full.rank, np.inf)[clear], cut.rank[clear])
    assert clear.sum() > 20


def test_rank_lists_of_an_export() -> None:
    ranked = [["a", "b"], ["b", "c"], ["c", "a"]]
    values = [[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]]
    out = rank_lists(ranked, values, [["b"], ["c"], ["x", "a"]])
    assert out.rank.tolist() == [2.0, 2.0, 2.0]  # "c" ties "b": pessimistic
    assert out.predicted == ["a", "b", "c"]
    assert out.correct.tolist() == [False, False, False]
    assert rank_lists([["a", "b"]], [[0.9, 0.1]], [["z"]]).rank.tolist() == [math.inf]


def test_classification_metrics_macro_over_asked_and_predicted_classes() -> None:
    out = classification_metrics(["a", "a", "b", "c"], ["a", "b", "b", "z"])
    assert out["accuracy"] == 0.5
    # Classes a, b, c (asked) and z (predicted, never asked: its prediction is a false positive).
    assert out["recall_macro"] == pytest.approx((0.5 + 1 + 0 + 0) / 4)
    assert out["precision_macro"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)
    # Guessing an unasked class costs precision as guessing an asked one does.
    unasked = classification_metrics(["a", "a", "b", "b"], ["a", "c", "b", "d"])
    asked = classification_metrics(["a", "a", "b", "b"], ["a", "b", "b", "a"])
    assert unasked["precision_macro"] < 1.0
    assert unasked["f1_macro"] < asked["f1_macro"]


def test_classification_metrics_per_question_with_several_labels() -> None:
    # Right: q1 (b is a label), q3. A question counts for its prediction when right, else its
    # first label: classes b, a, c, b against predictions b, c, c, a.
    references = [["a", "b"], ["a"], ["c"], ["b", "c"]]
    out = classification_metrics(references, ["b", "c", "c", "a"])
    assert out["accuracy"] == 0.5
    # precision: a 0/1, b 1/1, c 1/2; recall: a 0/1, b 1/2, c 1/1
    assert out["precision_macro"] == pytest.approx((0 + 1 + 0.5) / 3)
    assert out["recall_macro"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert out["f1_macro"] == pytest.approx((0 + 2 / 3 + 2 / 3) / 3)
    assert classification_metrics([["a", "b"]], ["b"])["recall_macro"] == 1.0  # not penalised for "a"


def test_empty_inputs_give_zeros() -> None:
    assert classification_metrics([], [])["accuracy"] == 0.0
    assert ranking_metrics([])["mrr"] == 0.0
    assert ranking_metrics([])["mrr_at_10"] == 0.0


def test_format_table() -> None:
    table = format_table({"gru": {"accuracy": 0.5, "num_test": 40}, "baseline": {"accuracy": 0.25}})
    assert table.splitlines() == [
        "| model | accuracy | num_test |",
        "|---|---:|---:|",
        "| gru | 0.500 | 40 |",
        "| baseline | 0.250 |  |",
    ]
    # A fraction of 1 keeps its decimals beside the others; a count never has any.
    row = format_table({"m": {"coverage": 1.0, "recall_at_1": 0.0, "epochs": 12.0, "depth": np.int64(1)}})
    assert row.splitlines()[-1] == "| m | 1.000 | 0.000 | 12 | 1 |"


def test_predictions_write_whole_ranks_and_null_where_no_reference_is_ranked() -> None:
    scored = rank_lists([["a", "b"], ["c", "d"]], [[0.9, 0.1], [0.8, 0.2]], [["b"], ["z"]])
    frame = predictions_frame(["q1", "q2"], [["b"], ["z"]], scored)
    lines = frame.to_json(orient="records", lines=True).splitlines()
    assert [json.loads(line)["rank"] for line in lines] == [2, None]
    assert '"rank":2,' in lines[0]


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


def test_format_columns_escapes_cells_and_keeps_the_first_rows() -> None:
    table = format_columns({"question": ["a|b", "c\nd", "e"], "answer": [1, None, "f"]}, rows=2)
    assert table.splitlines() == [
        "| question | answer |",
        "|---|---|",
        "| a\\|b | 1 |",
        "| c d | None |",
    ]
