import keras
import numpy as np
import pytest

from qa_assistant.tasks.retrieval.bank import calibrate_threshold
from qa_assistant.tasks.retrieval.head import (
    InBatchSoftmaxLoss,
    PairSigmoidLoss,
    ScaledSimilarity,
    SymmetricInBatchSoftmaxLoss,
    in_batch_accuracy,
    retrieval_loss,
)


def softmax_ce(logits: np.ndarray, index: int) -> float:
    shifted = logits - logits.max()
    return float(np.log(np.exp(shifted).sum()) - shifted[index])


def test_softmax_loss_does_not_treat_a_repeated_answer_as_a_negative() -> None:
    logits = np.array([[2.0, 5.0, 0.0], [5.0, 2.0, 0.0], [0.0, 1.0, 3.0]], dtype="float32")
    ids = np.array([7, 7, 9], dtype="float32")  # rows 0 and 1 share an answer
    loss = InBatchSoftmaxLoss(reduction=None)(ids, logits).numpy()
    assert loss[0] == pytest.approx(softmax_ce(np.array([2.0, 0.0]), 0), abs=1e-5)
    assert loss[1] == pytest.approx(softmax_ce(np.array([2.0, 0.0]), 0), abs=1e-5)
    assert loss[2] == pytest.approx(softmax_ce(logits[2], 2), abs=1e-5)


def test_symmetric_loss_averages_both_directions_and_masks_duplicates_both_ways() -> None:
    logits = np.array([[2.0, 5.0, 0.0], [5.0, 2.0, 0.0], [0.0, 1.0, 3.0]], dtype="float32")
    ids = np.array([7, 7, 9], dtype="float32")  # rows 0 and 1 share an answer
    loss = SymmetricInBatchSoftmaxLoss(reduction=None)(ids, logits).numpy()
    # Question 0 over answers {0, 2}; answer 0 over questions {0, 2} (question 1 has the same answer).
    row0 = (softmax_ce(np.array([2.0, 0.0]), 0) + softmax_ce(np.array([2.0, 0.0]), 0)) / 2
    assert loss[0] == pytest.approx(row0, abs=1e-5)
    # Question 2 over all answers; answer 2 over all questions (column 2: 0, 0, 3).
    row2 = (softmax_ce(logits[2], 2) + softmax_ce(logits[:, 2], 2)) / 2
    assert loss[2] == pytest.approx(row2, abs=1e-5)
    # Not the one-way loss: an answer that fits another question better costs more.
    skewed = np.array([[3.0, 0.0], [4.0, 3.0]], dtype="float32")
    two = np.array([1, 2], dtype="float32")
    one_way = InBatchSoftmaxLoss(reduction=None)(two, skewed).numpy()
    both = SymmetricInBatchSoftmaxLoss(reduction=None)(two, skewed).numpy()
    assert both[0] > one_way[0]
    assert isinstance(retrieval_loss("symmetric"), SymmetricInBatchSoftmaxLoss)


def test_hard_negatives_widen_the_candidates_and_a_negative_that_is_a_rows_answer_is_masked() -> None:
    # Two rows; columns: their answers (ids 7, 8), then their hard negatives (ids 8, 9).
    logits = np.array([[4.0, 1.0, 3.0, 2.0], [0.5, 4.0, 3.5, 1.0]], dtype="float32")
    ids = np.array([[7, 8], [8, 9]], dtype="float32")
    loss = InBatchSoftmaxLoss(reduction=None)(ids, logits).numpy()
    assert loss[0] == pytest.approx(softmax_ce(logits[0], 0), abs=1e-5)  # every column a negative
    # Row 1's own answer (id 8) is also row 0's hard negative (column 2): masked, not a negative.
    assert loss[1] == pytest.approx(softmax_ce(np.array([0.5, 4.0, 1.0]), 1), abs=1e-5)
    symmetric = SymmetricInBatchSoftmaxLoss(reduction=None)(ids, logits).numpy()
    # The answers choose among the 2 questions only (negatives have no question of their own).
    backward0 = softmax_ce(logits[:, 0], 0)
    assert symmetric[0] == pytest.approx((softmax_ce(logits[0], 0) + backward0) / 2, abs=1e-5)
    accuracy = in_batch_accuracy(ids, np.array([[1.0, 0.0, 2.0, 0.0], [0.0, 1.0, 2.0, 0.0]], dtype="float32"))
    assert accuracy.numpy().tolist() == [0.0, 1.0]  # row 1's best column holds its own answer (id 8)


def test_mined_negatives_are_near_misses_never_a_right_answer() -> None:
    from qa_assistant.tasks.retrieval.mining import mine_hard_negatives, tfidf_scorer

    bank = [
        "Opening hours are 9 to 5.",
        "Opening day is Monday.",
        "A plan costs 10 euros.",
        "We are in Lisbon.",
    ]
    pairs = [
        ("what are your opening hours", bank[0]),
        ("which opening day", bank[1]),
        ("how much is a plan", bank[2]),
        ("where is the office", bank[3]),
    ]
    right = {"when are you open": {bank[0]}, "is it open on monday": {bank[1], bank[0]}}
    questions = [
        "what are your opening hours",
        "when are you open",
        "is it open on monday",
        "where is the office",
    ]
    own = [bank[0], bank[0], bank[1], bank[3]]
    negatives = mine_hard_negatives(questions, own, tfidf_scorer(pairs, bank), bank, right)
    assert negatives[0] == bank[1]  # shares "opening" with the question
    for question, answer, negative in zip(questions, own, negatives, strict=True):
        assert negative != answer
        assert negative not in right.get(question, set())
    assert mine_hard_negatives(questions, own, tfidf_scorer(pairs, bank), bank, right) == negatives


def test_a_ceiling_skips_candidates_scoring_close_to_the_right_answer() -> None:
    from qa_assistant.tasks.retrieval.mining import mine_hard_negatives

    bank = ["right", "overlapping", "near miss", "far"]
    scores = np.array(
        [
            [0.8, 0.79, 0.6, 0.1],  # "overlapping" is within 5 % of the right answer: skipped
            [0.5, 0.9, 0.8, 0.6],  # every wrong answer above 0.95 x 0.5: the lowest-scoring one
            [0.0, 0.3, 0.2, 0.1],  # the ranker gives the right answer nothing: no cap
        ]
    )
    questions, own = ["q0", "q1", "q2"], ["right"] * 3

    def scorer(chunk: list[str]) -> np.ndarray:
        return scores[: len(chunk)]

    uncapped = mine_hard_negatives(questions, own, scorer, bank, {})
    assert uncapped == ["overlapping", "overlapping", "overlapping"]
    capped = mine_hard_negatives(questions, own, scorer, bank, {}, ceiling=0.95)
    assert capped == ["near miss", "far", "overlapping"]
    # A looser ceiling lets the overlap through again.
    assert mine_hard_negatives(questions, own, scorer, bank, {}, ceiling=0.99)[0] == "overlapping"


def test_sigmoid_loss_labels_every_matching_pair_positive() -> None:
    logits = np.array([[3.0, -2.0], [-1.0, 4.0]], dtype="float32")
    ids = np.array([1, 2], dtype="float32")
    loss = PairSigmoidLoss(reduction=None)(ids, logits).numpy()

    def bce(x: float, label: float) -> float:
        return float(np.log1p(np.exp(-x)) if label else np.log1p(np.exp(x)))

    assert loss[0] == pytest.approx(bce(3.0, 1) + bce(-2.0, 0), abs=1e-5)
    same = PairSigmoidLoss(reduction=None)(np.array([1, 1], dtype="float32"), logits).numpy()
    assert same[0] == pytest.approx(bce(3.0, 1) + bce(-2.0, 1), abs=1e-5)


def test_in_batch_accuracy_counts_a_duplicate_answer_as_a_hit() -> None:
    logits = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype="float32")
    hits = np.asarray(in_batch_accuracy(np.array([4, 4, 5]), logits))
    assert hits.tolist() == [1.0, 1.0, 0.0]


def test_scaled_similarity_temperature_bias_and_round_trip() -> None:
    q = np.array([[1.0, 0.0]], dtype="float32")
    a = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    fixed = ScaledSimilarity(temperature=0.1, learn_temperature=False)
    assert np.allclose(fixed(q, a), [[10.0, 0.0]], atol=1e-4)
    assert not fixed.trainable_weights
    sigmoid = ScaledSimilarity(temperature=0.1, use_bias=True)
    assert np.allclose(sigmoid(q, a), [[0.0, -10.0]], atol=1e-4)
    assert len(sigmoid.trainable_weights) == 2
    clone = ScaledSimilarity.from_config(sigmoid.get_config())
    clone(q, a)
    clone.set_weights(sigmoid.get_weights())
    assert np.allclose(clone(q, a), sigmoid(q, a))
    assert (
        keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(fixed)).temperature == 0.1
    )


def test_calibrated_threshold_keeps_most_right_answers() -> None:
    scores = np.linspace(0.0, 1.0, 101)
    correct = scores > 0.5
    threshold = calibrate_threshold(scores, correct, keep=0.9)
    assert np.mean(scores[correct] >= threshold) >= 0.9
    assert 0.5 < threshold < 0.6
    assert calibrate_threshold(scores, np.zeros(101, dtype=bool)) is None
