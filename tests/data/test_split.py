import pandas as pd
import pytest

from qa_assistant.data.prepare import question_key
from qa_assistant.data.split import SplitPlan, split_classification, split_grouped
from qa_assistant.errors import UserError


def faq(per_answer: list[int]) -> pd.DataFrame:
    rows = [(f"q{a}-{i}", f"answer {a}") for a, n in enumerate(per_answer) for i in range(n)]
    return pd.DataFrame(rows, columns=["question", "answer"])


def test_known_answer_split_only_holds_out_answers_kept_in_training() -> None:
    data = faq([1] * 50 + [2] * 10 + [3] * 5)
    splits = split_classification(
        data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0)
    )
    assert splits.method == "known-answer"
    train_answers = set(splits.train["answer"])
    held = pd.concat([splits.validation, splits.test])
    assert len(splits.test) > 0
    assert set(held["answer"]) <= train_answers
    # every single-phrasing answer stays in training
    singles = {f"answer {a}" for a in range(50)}
    assert singles <= train_answers
    assert not (set(held["answer"]) & singles)
    assert splits.notes["eligible_questions"] == 10 * 2 + 5 * 3
    assert splits.notes["holdable_questions"] == 10 + 5 * 2
    assert len(held) <= splits.notes["holdable_questions"]
    assert len(splits.train) + len(held) == len(data)


def test_stratified_split_when_every_class_has_enough_examples() -> None:
    data = faq([20, 20, 20, 20])
    splits = split_classification(
        data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0)
    )
    assert splits.method == "stratified"
    assert splits.test["answer"].value_counts().to_dict() == {f"answer {a}": 4 for a in range(4)}
    assert len(splits.validation) > 0
    assert not set(splits.test["question"]) & set(splits.train["question"])


def test_stratified_split_sizes_follow_the_fractions_with_small_classes() -> None:
    data = faq([40, 30, 20, 10, 6, 5, 5])
    splits = split_classification(
        data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0)
    )
    assert splits.method == "stratified"
    sizes = splits.sizes()
    assert abs(sizes["test"] - 0.2 * len(data)) <= 6
    assert abs(sizes["validation"] - 0.1 * len(data)) <= 6


def test_same_question_never_on_both_sides() -> None:
    rows = [("what is ai?", "a"), ("what is ai?", "b"), ("define ai", "a"), ("define ai", "b")]
    rows += [(f"x{i}", "a") for i in range(6)] + [(f"y{i}", "b") for i in range(6)]
    data = pd.DataFrame(rows, columns=["question", "answer"])
    for seed in range(5):
        s = split_classification(
            data, "answer", SplitPlan(validation_fraction=0.2, test_fraction=0.2, seed=seed)
        )
        assert not set(s.train["question"]) & (set(s.test["question"]) | set(s.validation["question"]))


def test_split_is_reproducible_and_seed_dependent() -> None:
    data = faq([3] * 40)
    a = split_classification(data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=1))
    b = split_classification(data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=1))
    c = split_classification(data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=2))
    assert a.test.equals(b.test)
    assert not a.test.equals(c.test)


def test_single_class_is_an_error() -> None:
    with pytest.raises(UserError, match="at least 2 distinct values of 'answer'; got 1 \\('answer 0'\\)"):
        split_classification(
            faq([5]), "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0)
        )


def test_nothing_to_hold_out_is_an_error() -> None:
    with pytest.raises(UserError, match="no question can be held out"):
        split_classification(
            faq([1] * 20), "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0)
        )


def test_given_test_file_is_used_as_is_and_unseen_labels_counted() -> None:
    train = faq([4, 4, 4])
    test = pd.DataFrame([("new q", "answer 0"), ("other", "never seen")], columns=["question", "answer"])
    s = split_classification(
        train, "answer", SplitPlan(validation_fraction=0.25, test_fraction=0.2, seed=0), test_frame=test
    )
    assert s.test.equals(test)
    assert s.notes["unseen_test_labels"] == 1
    assert len(s.train) + len(s.validation) == len(train)


def test_zero_test_fraction_without_test_file_is_an_error() -> None:
    with pytest.raises(UserError, match="test_fraction is 0"):
        split_classification(
            faq([5, 5]), "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.0, seed=0)
        )


def test_grouped_split_for_retrieval() -> None:
    data = faq([1] * 100)
    s = split_grouped(data, SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0))
    assert (len(s.train), len(s.validation), len(s.test)) == (70, 10, 20)
    assert not set(s.train["question"]) & set(s.test["question"])


def _near_duplicates() -> pd.DataFrame:
    """Forty answers, each asked three ways, two of which differ only in case and punctuation."""
    rows = []
    for a in range(40):
        rows += [(f"will you {a} die?", f"answer {a % 8}"), (f"Will you {a} DIE", f"answer {a % 8}")]
        rows.append((f"another way to ask {a}", f"answer {a % 8}"))
    return pd.DataFrame(rows, columns=["question", "answer"])


def _sides(splits) -> list[set[str]]:
    return [set(question_key(part["question"])) for part in (splits.train, splits.validation, splits.test)]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 42])
def test_near_duplicate_questions_never_on_both_sides(seed: int) -> None:
    data = _near_duplicates()
    for splits in (
        split_grouped(data, SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=seed)),
        split_grouped(
            data, SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=seed, folds=4, fold=1)
        ),
        split_classification(
            data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=seed)
        ),
        split_classification(
            data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=seed, folds=3)
        ),
    ):
        train, validation, test = _sides(splits)
        assert len(test) > 0
        assert not train & test
        assert not train & validation
        assert not validation & test


def test_known_answer_split_counts_phrasings_by_key() -> None:
    # One answer, two questions that differ only in punctuation: a single phrasing, nothing to hold out.
    rows = [("will you die?", "no"), ("will you die", "no"), ("hi", "hello"), ("hi there", "hello")]
    data = pd.DataFrame(rows, columns=["question", "answer"])
    splits = split_classification(
        data, "answer", SplitPlan(validation_fraction=0.0, test_fraction=0.5, seed=0)
    )
    assert splits.method == "known-answer"
    assert set(splits.test["answer"]) == {"hello"}
    assert splits.notes["eligible_questions"] == 2


def test_a_grouped_split_too_small_to_hold_out_a_question_is_an_error_not_an_empty_test() -> None:
    # 2 questions x 0.2 rounds to no test question: metrics over none would read as 0.
    with pytest.raises(UserError, match=r"data\.test_fraction 0\.2 of 2 distinct questions rounds to none"):
        split_grouped(faq([1, 1]), SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0))
    with pytest.raises(UserError, match="no question is left to train on"):
        split_grouped(faq([1] * 3), SplitPlan(validation_fraction=0.5, test_fraction=0.4, seed=0))


def test_a_classifier_of_single_phrasings_is_pointed_to_ranking_the_answers() -> None:
    # A typical FAQ: one question per answer. Nothing can be held out for a classifier,
    # while a retrieval config ranks such answers (the README's own-data case).
    rows = [(f"question {i}?", f"answer {i}") for i in range(10)]
    data = pd.DataFrame(rows, columns=["question", "answer"])
    with pytest.raises(
        UserError, match=r"single phrasing; .*task\.type: retrieve, e\.g\. experiments/configs/"
    ):
        split_classification(data, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0))


def test_a_known_answer_split_that_rounds_to_no_test_question_says_so() -> None:
    # 5 questions, every answer with a spare phrasing: 0.1 x 5 rounds to 0, which is
    # the reason, not "a single phrasing"; 0.2 holds one out.
    with pytest.raises(UserError, match=r"data\.test_fraction 0\.1 of 5 distinct questions rounds to none"):
        split_classification(
            faq([3, 2]), "answer", SplitPlan(validation_fraction=0.0, test_fraction=0.1, seed=0)
        )
    s = split_classification(
        faq([3, 2]), "answer", SplitPlan(validation_fraction=0.0, test_fraction=0.2, seed=0)
    )
    assert len(s.test) == 1
