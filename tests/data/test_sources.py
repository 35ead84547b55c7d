import json
from pathlib import Path

import pandas as pd
import pytest

from qa_assistant.data.sources import load_pairs
from qa_assistant.errors import UserError


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_csv_tsv_jsonl_read_the_same(tmp_path: Path) -> None:
    rows = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a,2"}]
    pd.DataFrame(rows).to_csv(tmp_path / "f.csv", index=False)
    pd.DataFrame(rows).to_csv(tmp_path / "f.tsv", index=False, sep="\t")
    write(tmp_path / "f.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    for name in ("f.csv", "f.tsv", "f.jsonl"):
        frame, info = load_pairs(str(tmp_path / name))
        assert frame[["question", "answer"]].to_dict("records") == rows
        assert info.rows == 2
        assert len(info.sha256) == 64


def test_custom_column_names_are_renamed(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "prompt,reply,topic\nhi,hello,greet\n")
    frame, _ = load_pairs(
        str(path), question_column="prompt", answer_column="reply", extra_columns=("topic",)
    )
    assert list(frame.columns) == ["question", "answer", "topic"]


def test_bom_crlf_quoted_newlines_and_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", b'\xef\xbb\xbfquestion,answer\r\n"two\r\nlines",42\r\n7,8\r\n')
    frame, _ = load_pairs(str(path))
    assert frame["question"].tolist() == ["two\r\nlines", "7"]
    assert frame["answer"].tolist() == ["42", "8"]


def test_empty_cells_become_empty_strings(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", "question,answer\nq1,\n,a2\nq3,a3\n")
    frame, _ = load_pairs(str(path))
    assert frame["answer"].tolist() == ["", "a2", "a3"]
    assert frame["question"].tolist() == ["q1", "", "q3"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("missing.csv", None, "does not exist"),
        ("empty.csv", "", "is empty"),
        ("blank.csv", "\n\n  \n", "is empty"),
        ("header.csv", "question,answer\n", "has a header but no rows"),
        ("cols.csv", "q,a\nx,y\n", "has no columns 'question', 'answer'; columns found: 'q', 'a'"),
        ("semi.csv", "question;answer\nx;y\n", "is the delimiter right"),
        ("latin1.csv", b"question,answer\ncaf\xe9,x\n", "not UTF-8: undecodable byte 0xe9 on line 2"),
        ("broken.jsonl", '{"question": "a", "answer": "b"}\n{"question": \n', "line 2 is not valid JSON"),
        ("list.jsonl", '["a", "b"]\n', "line 1 holds a JSON list"),
        ("data.xlsx", "x", "has extension '.xlsx'; expected one of: .csv, .tsv, .jsonl"),
        ("ragged.csv", 'question,answer\n"a","b","c"\n"x\n', "line 2 has 3 fields but the header has 2"),
        ("unclosed.csv", 'question,answer\na,b\n"x,y\n', "could not be parsed as CSV"),
        (
            "wide.csv",
            "question,answer\nhi,hello,extra\nbye,see you\n",
            "line 2 has 3 fields but the header has 2",
        ),
        ("wide.tsv", 'question\tanswer\n"x\ny"\tz\tw\na\tb\n', "line 3 has 3 fields but the header has 2"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path: Path, name: str, content, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        write(path, content)
    with pytest.raises(UserError) as error:
        load_pairs(str(path))
    text = str(error.value)
    assert message in text
    assert "\n" not in text
    assert str(path) in text


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="is a directory"):
        load_pairs(str(tmp_path))


def test_unknown_builtin_lists_known() -> None:
    with pytest.raises(UserError, match="unknown builtin data set 'nope'; expected one of: chatterbot"):
        load_pairs("builtin:nope")


def test_builtin_chatterbot_loads_offline() -> None:
    frame, info = load_pairs("builtin:chatterbot", extra_columns=("category",))
    assert info.rows == len(frame) > 2000
    assert {"question", "answer", "category"} <= set(frame.columns)
    assert "ai" in set(frame["category"])
    assert (frame["question"] == "What is AI?").any()


def test_tfds_catalogue_dataset_through_mock_data() -> None:
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=7):
        frame, info = load_pairs("tfds:squad/v1.1", answer_column="answers/text")
    assert len(frame) == 7
    assert info.source == "tfds:squad/v1.1#train"
    assert frame["question"].map(type).eq(str).all()
    assert frame["answer"].map(type).eq(str).all()


def test_tfds_split_suffix_and_missing_feature() -> None:
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        frame, info = load_pairs("tfds:squad/v1.1#validation", answer_column="answers/text")
        assert info.source.endswith("#validation")
        assert len(frame) == 3
        with pytest.raises(UserError, match=r"has no feature 'reply'; features found: .*question"):
            load_pairs("tfds:squad/v1.1", answer_column="reply")


def test_tfds_unknown_dataset_is_a_user_error() -> None:
    with pytest.raises(UserError, match="tfds:no_such_dataset_xyz could not be loaded"):
        load_pairs("tfds:no_such_dataset_xyz")


def test_the_configured_columns_win_over_columns_already_named_question_and_answer(tmp_path: Path) -> None:
    path = write(
        tmp_path / "f.csv",
        "question,answer,question_fr,answer_fr\nwhere is the office,In Lisbon,où est le bureau,À Lisbonne\n",
    )
    frame, _ = load_pairs(str(path), question_column="question_fr", answer_column="answer_fr")
    assert frame[["question", "answer"]].to_dict("records") == [
        {"question": "où est le bureau", "answer": "À Lisbonne"}
    ]


def test_tsv_quotes_that_do_not_wrap_whole_fields_are_text(tmp_path: Path) -> None:
    # A quote opening a field but closing mid-text, and one never closed: without
    # care the first loses its quotes and the second swallows the rows after it.
    path = write(
        tmp_path / "f.tsv",
        'question\tanswer\nq1\t"Hi" she said\nq2\t"Hello\nq3\tans3\nq4\tshe said bye"\nq5\tok\n',
    )
    frame, _ = load_pairs(str(path))
    assert frame["question"].tolist() == ["q1", "q2", "q3", "q4", "q5"]
    assert frame["answer"].tolist() == ['"Hi" she said', '"Hello', "ans3", 'she said bye"', "ok"]


def test_tsv_quotes_that_wrap_whole_fields_still_quote(tmp_path: Path) -> None:
    rows = [{"question": "two\nlines", "answer": 'He said "hi"'}, {"question": "q2", "answer": "a\tb"}]
    pd.DataFrame(rows).to_csv(tmp_path / "f.tsv", index=False, sep="\t")
    frame, _ = load_pairs(str(tmp_path / "f.tsv"))
    assert frame[["question", "answer"]].to_dict("records") == rows


def test_a_parse_error_names_the_physical_line_of_the_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path / "f.csv", 'question,answer\n"three\nline\nquestion",a\nq2,a2\nq3,a3,extra\n')
    with pytest.raises(UserError, match="line 6 has 3 fields but the header has 2"):
        load_pairs(str(path))


def test_jsonl_values_keep_their_json_spelling_and_an_empty_file_is_not_said_to_have_a_header(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path / "f.jsonl", '{"question": "is it on?", "answer": true}\n{"question": "n", "answer": 2.5}\n'
    )
    frame, _ = load_pairs(str(path))
    assert frame["answer"].tolist() == ["true", "2.5"]
    with pytest.raises(UserError, match="has no fields in any of its objects") as error:
        load_pairs(str(write(tmp_path / "e.jsonl", "{}\n{}\n")))
    assert "header" not in str(error.value)


def test_a_quoted_tsv_field_longer_than_the_csv_modules_limit_keeps_its_quoting(tmp_path: Path) -> None:
    rows = [
        {"question": "q1", "answer": "word " * 40_000 + '"quoted"\tend'},
        {"question": "q2", "answer": "a2"},
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "f.tsv", index=False, sep="\t")  # 200,000+ characters, quoted
    frame, _ = load_pairs(str(tmp_path / "f.tsv"))
    assert frame[["question", "answer"]].to_dict("records") == rows


@pytest.mark.parametrize(
    ("found", "headerless"),
    [
        (["1", "2"], True),
        (["-1", "2.5"], True),
        (["What is AI?", "Artificial intelligence."], True),
        (["how do I reset my password", "click reset"], True),  # a sentence of three words or more
        (["prompt", "reply"], False),
        (["Question Text", "Answer Text"], False),
        (["Unnamed: 0", "q", "a"], False),  # pandas' index column beside other names
        ([], False),
    ],
)
def test_the_no_header_hint_is_given_for_data_like_headers_only(found: list[str], headerless: bool) -> None:
    from qa_assistant.data.sources import columns_hint

    hint = columns_hint(["question", "answer"], found)
    assert ("does the file have one?" in hint) is headerless
