from qa_assistant.metrics.baselines import tfidf_logistic_regression, tfidf_retrieval

TRAIN_QUESTIONS = [
    "what are your opening hours",
    "when do you open",
    "how much does it cost",
    "what is the price",
]
TRAIN_LABELS = ["hours", "hours", "price", "price"]


def test_baseline_learns_word_overlap_and_counts_unseen_labels_as_errors() -> None:
    train_q, train_y = TRAIN_QUESTIONS, TRAIN_LABELS
    metrics = tfidf_logistic_regression(
        train_q,
        train_y,
        ["opening hours please", "the price please", "where are you"],
        ["hours", "price", "address"],
    )
    assert metrics["accuracy"] == 2 / 3
    assert metrics["recall_at_5"] == 2 / 3  # "address" is never ranked
    assert set(metrics) >= {"f1_macro", "mrr", "mrr_at_10", "recall_at_1", "recall_at_10"}


def test_baselines_score_each_question_once_with_a_hit_on_any_of_its_answers() -> None:
    train_q, train_y = TRAIN_QUESTIONS, TRAIN_LABELS
    # "opening hours please" is asked twice with two answers: one question, right if "hours" comes first.
    test_q = ["opening hours please", "opening hours please", "the price please"]
    test_y = ["hours", "price", "price"]
    classified = tfidf_logistic_regression(train_q, train_y, test_q, test_y)
    assert classified["accuracy"] == 1.0  # per row it could not pass 2/3
    assert classified["recall_at_1"] == 1.0
    assert classified["f1_macro"] == 1.0
    retrieved = tfidf_retrieval(train_q, train_y, test_q, test_y, ["hours", "price", "address"])
    assert retrieved["recall_at_1"] == retrieved["accuracy"] == 1.0
    assert retrieved["mrr"] == retrieved["mrr_at_10"] == 1.0
