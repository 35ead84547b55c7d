import pandas as pd

from qa_assistant.config import TextConfig
from qa_assistant.data.prepare import clean_pairs


def frame(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["question", "answer"], dtype=object)


def test_questions_cleaned_like_the_model_answers_for_display() -> None:
    out, _ = clean_pairs(
        frame([("  <b>What</b> is&nbsp;AI? ", "AI is <i>Artificial</i> Intelligence.")]), TextConfig()
    )
    assert out.loc[0, "question"] == "what is ai?"
    assert out.loc[0, "answer"] == "AI is Artificial Intelligence."  # case kept for display


def test_empty_rows_dropped_and_counted() -> None:
    rows = [("q1", "a1"), ("", "a2"), ("q3", "  "), ("<br>", "a4"), ("q5", "a5")]
    out, report = clean_pairs(frame(rows), TextConfig())
    assert out["question"].tolist() == ["q1", "q5"]
    assert (report.rows_read, report.dropped_empty, report.rows_kept) == (5, 3, 2)


def test_duplicates_after_cleaning_dropped_and_counted() -> None:
    rows = [("What is AI?", "x"), ("what  is AI?", "x"), ("What is AI?", "y")]
    out, report = clean_pairs(frame(rows), TextConfig())
    assert len(out) == 2
    assert report.dropped_duplicates == 1
    kept, report = clean_pairs(frame(rows), TextConfig(), deduplicate=False)
    assert len(kept) == 3
    assert report.dropped_duplicates == 0


def test_repeated_header_rows_dropped() -> None:
    rows = [("q1", "a1"), ("question", "answer"), ("q2", "a2")]
    out, report = clean_pairs(frame(rows), TextConfig())
    assert report.dropped_repeated_header == 1
    assert out["question"].tolist() == ["q1", "q2"]


def test_label_columns_cleaned_for_display() -> None:
    data = frame([("q1", "a1")])
    data["category"] = [" Tech  Support "]
    out, _ = clean_pairs(data, TextConfig(), label_columns=("category",))
    assert out.loc[0, "category"] == "Tech Support"


def test_lowercase_off_keeps_case() -> None:
    out, _ = clean_pairs(frame([("What IS AI?", "x")]), TextConfig(lowercase=False))
    assert out.loc[0, "question"] == "What IS AI?"
