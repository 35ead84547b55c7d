from qa_assistant.training.baseline import tfidf_logistic_regression


def test_baseline_learns_word_overlap_and_counts_unseen_labels_as_errors() -> None:
    train_q = [
        "what are your opening hours",
        "when do you open",
        "how much does it cost",
        "what is the price",
    ]
    train_y = ["hours", "hours", "price", "price"]
    metrics = tfidf_logistic_regression(
        train_q,
        train_y,
        ["opening hours please", "the price please", "where are you"],
        ["hours", "price", "address"],
    )
    assert metrics["accuracy"] == 2 / 3
    assert metrics["recall_at_5"] == 2 / 3  # "address" is never ranked
    assert set(metrics) >= {"f1_macro", "mrr", "recall_at_1", "recall_at_10"}
