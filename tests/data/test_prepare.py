import logging

import pandas as pd
import pytest

from qa_assistant.config import TextConfig
from qa_assistant.data.prepare import clean_pairs, question_key, settle_forms


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


def test_quality_report_counts_short_rows_and_near_duplicates(caplog: pytest.LogCaptureFixture) -> None:
    rows = [
        ("o", "f"),  # the shape of a conversation cut into characters
        ("How many legs has a spider?", "8"),  # a real short answer: kept, but flagged
        ("Will you die?", "No."),
        ("will you die", "Never."),
        ("WILL YOU DIE!!", "No."),
        ("What is AI?", "Artificial intelligence."),
    ]
    with caplog.at_level(logging.INFO, logger="qa_assistant.data.prepare"):
        out, report = clean_pairs(frame(rows), TextConfig(), source="mine.csv")
    assert len(out) == 6
    assert report.suspicious_short == 2
    assert report.near_duplicate_questions == 2  # three phrasings of one key
    assert report.questions_with_several_answers == 1  # that key has "No." and "Never."
    assert report.as_dict()["suspicious_short"] == 2
    assert "mine.csv: 2 rows have a question or answer with fewer than 2 letters/digits" in caplog.text
    assert "'o' -> 'f'" in caplog.text
    assert "data quality of mine.csv: 6 rows read" in caplog.text
    assert "questions with more than one answer: 1" in caplog.text


def test_question_key_ignores_case_punctuation_and_spacing() -> None:
    keys = question_key(pd.Series(["Will you die?", "will  you die", "¿Qué es IA?", "???", "!!"]))
    assert keys.tolist() == ["will you die", "will you die", "qué es ia", "???", "!!"]


def test_a_repeated_header_with_its_files_byte_order_mark_is_dropped() -> None:
    # Two "CSV UTF-8" exports joined with cat: the second header starts with U+FEFF.
    rows = [("q1", "a1"), ("\ufeffquestion", "answer"), ("q2", "a2")]
    out, report = clean_pairs(frame(rows), TextConfig())
    assert report.dropped_repeated_header == 1
    assert out["question"].tolist() == ["q1", "q2"]


def test_the_empty_rows_warning_names_the_column_that_was_empty(caplog: pytest.LogCaptureFixture) -> None:
    data = frame([("q1", "a1"), ("q2", "a2"), ("q3", "a3")])
    data["category"] = ["", "tech", ""]
    with caplog.at_level(logging.WARNING):
        out, report = clean_pairs(data, TextConfig(), label_columns=("category",))
    assert (report.dropped_empty, len(out)) == (2, 1)
    assert "dropped 2 of 3 rows with an empty 'category' after cleaning" in caplog.text


def test_answers_keep_their_lines_characters_and_comparison_signs() -> None:
    code = "Here's a generic function:\n\n```\nfunction identity<T>(arg: T): T {\n    return arg;\n}\n```"
    rows = [
        ("q1", code),
        ("q2", "Allowed if pressure < 5 bar and temperature > 3 degrees."),
        ("q3", "The tank holds 10³ litres, <b>½</b> of it\r\nfull.  "),
    ]
    out, _ = clean_pairs(frame(rows), TextConfig())
    assert out["answer"].tolist() == [
        code,
        "Allowed if pressure < 5 bar and temperature > 3 degrees.",
        "The tank holds 10³ litres, ½ of it\nfull.",
    ]


def test_answers_differing_only_in_spacing_are_one_answer_written_as_first_seen() -> None:
    rows = [
        ("q1", "Open 9 to 5.\nClosed on Sundays."),
        ("q2", "Open 9  to 5. Closed on Sundays. "),
        ("q3", "x"),
    ]
    out, _ = clean_pairs(frame(rows), TextConfig())
    assert out["answer"].tolist() == ["Open 9 to 5.\nClosed on Sundays."] * 2 + ["x"]
    assert settle_forms(
        ["Open 9 to 5. Closed on Sundays.", "y"], TextConfig(), known=out["answer"].tolist()
    ) == [
        "Open 9 to 5.\nClosed on Sundays.",
        "y",
    ]


def test_a_test_file_answer_written_with_other_spacing_is_the_training_answer(tmp_path) -> None:
    from qa_assistant.data import load_qa_data
    from tests.helpers import faq_rows, tiny_config

    rows = faq_rows()
    pd.DataFrame(rows).to_csv(tmp_path / "train.csv", index=False)
    answer = rows[0]["answer"]
    respaced = answer.replace(" ", "  ", 1).replace(" ", "\n", 2)
    pd.DataFrame([{"question": "a new phrasing?", "answer": respaced}]).to_csv(
        tmp_path / "test.csv", index=False
    )
    data = load_qa_data(
        tiny_config("task.type=retrieve", train=tmp_path / "train.csv", test=tmp_path / "test.csv")
    )
    assert data.splits.test["answer"].tolist() == [answer]


def test_an_older_models_one_line_answer_is_the_answer_written_with_lines_and_superscripts() -> None:
    # Exports made before answers kept their lines hold NFKC, one-line forms.
    assert settle_forms(
        ["The tank holds 10³ m²,\nfull."], TextConfig(), known=["The tank holds 103 m2, full."]
    ) == ["The tank holds 103 m2, full."]
