"""K-fold splits: every fold honest, the folds of one seed a partition of what can be tested."""

import re

import pandas as pd
import pytest

from qa_assistant.config import load_config
from qa_assistant.data.split import SplitPlan, split_classification, split_grouped
from qa_assistant.errors import UserError
from tests.data.test_split import faq


def folds_of(data: pd.DataFrame, k: int, seed: int = 0, **kwargs):
    return [
        split_classification(
            data,
            "answer",
            SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=seed, folds=k, fold=i),
            **kwargs,
        )
        for i in range(k)
    ]


def test_stratified_folds_partition_the_data_and_keep_class_proportions() -> None:
    data = faq([20, 10, 10, 5])
    splits = folds_of(data, 5)
    assert {s.method for s in splits} == {"stratified"}
    tested = pd.concat([s.test for s in splits])
    assert sorted(tested["question"]) == sorted(data["question"])  # each question tested exactly once
    for i, s in enumerate(splits):
        assert s.test["answer"].value_counts().to_dict() == {
            "answer 0": 4,
            "answer 1": 2,
            "answer 2": 2,
            "answer 3": 1,
        }
        assert not set(s.test["question"]) & (set(s.train["question"]) | set(s.validation["question"]))
        assert len(s.train) + len(s.validation) + len(s.test) == len(data)
        assert abs(len(s.validation) - 0.1 * len(data)) <= 4
        assert s.notes == {"folds": 5, "fold": i}


def test_known_answer_folds_test_each_eligible_question_once_with_its_answer_in_training() -> None:
    data = faq([1] * 30 + [2] * 6 + [3] * 4)
    splits = folds_of(data, 3, seed=4)
    assert {s.method for s in splits} == {"known-answer"}
    tested = pd.concat([s.test for s in splits])
    # every question whose answer has another phrasing is tested once; single phrasings never
    repeated = data["answer"].map(data["answer"].value_counts()) >= 2
    assert sorted(tested["question"]) == sorted(data.loc[repeated, "question"])
    for s in splits:
        assert set(s.test["answer"]) | set(s.validation["answer"]) <= set(s.train["answer"])
        assert len(s.test) > 0


def test_folds_depend_on_the_seed_and_repeat_with_it() -> None:
    data = faq([8] * 4)
    a, b, c = folds_of(data, 4, seed=1)[0], folds_of(data, 4, seed=1)[0], folds_of(data, 4, seed=2)[0]
    assert a.test.equals(b.test)
    assert not a.test.equals(c.test)


def test_grouped_folds_for_retrieval() -> None:
    data = faq([1] * 50)
    splits = [
        split_grouped(data, SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=0, folds=5, fold=i))
        for i in range(5)
    ]
    assert sorted(pd.concat([s.test for s in splits])["question"]) == sorted(data["question"])
    for s in splits:
        assert (len(s.train), len(s.validation), len(s.test)) == (35, 5, 10)
        assert not set(s.test["question"]) & set(s.validation["question"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.folds=1"], "data.folds must be 0 (one split) or at least 2; got 1"),
        (["data.folds=3", "data.fold=3"], "data.fold must be below data.folds (3); got 3"),
        (["data.folds=3", "data.test=t.csv"], "cannot be combined with a test file"),
        (
            ["data.folds=2", "data.validation_fraction=0.5"],
            "validation_fraction + 1/data.folds must be below 1",
        ),
    ],
)
def test_fold_settings_are_checked(overrides: list[str], message: str) -> None:
    with pytest.raises(UserError, match=re.escape(message)):
        load_config([], overrides)


def test_too_many_folds_name_the_limit() -> None:
    with pytest.raises(UserError, match=r"data\.folds is 7 but the largest class of 'answer' has 6 examples"):
        folds_of(faq([6, 5]), 7)
    with pytest.raises(UserError, match="fold 2 of 3 holds no question"):
        folds_of(faq([1] * 10 + [2]), 3)
