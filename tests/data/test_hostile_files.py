"""Hostile training files: each gives one clear line and exit 2, or loads with counted warnings.

Basic cases (missing file, empty file, wrong delimiter, Latin-1, a broken JSONL
line, ...) are in test_sources.py; these are the harder ones.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa_assistant import cli
from qa_assistant.data.dataset import load_qa_data
from qa_assistant.data.sources import load_pairs
from qa_assistant.errors import UserError
from tests.helpers import faq_rows, tiny_config


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


HOSTILE_ERRORS = [
    (
        "utf16.csv",
        "question,answer\nq,a\n".encode("utf-16"),
        "is UTF-16 text (byte-order mark fffe); expected UTF-8",
    ),
    ("utf32.jsonl", '{"question": "q"}\n'.encode("utf-32"), "is UTF-32 text"),
    (
        "mixed.csv",
        "question,answer\ncafé,a\n".encode() + "thé,b\n".encode("latin-1"),
        "not UTF-8: undecodable byte 0xe9 on line 3",
    ),
    (
        "cp1252.csv",
        "question,answer\nq,a\n\u201cq\u201d,a\n".encode("cp1252"),
        "not UTF-8: undecodable byte 0x93 on line 3",
    ),
    ("dup.csv", "question,answer,answer\nq,a,b\n", "has the column 'answer' more than once in its header"),
    (
        "dup.jsonl",
        '{"question": "a", "answer": "b", "question": "c"}\n',
        "line 1 has the key 'question' twice",
    ),
    (
        "nested.jsonl",
        '{"question": "q", "answer": "a"}\n{"question": "q", "answer": {"t": 1}}\n',
        "line 2: 'answer' holds a JSON object",
    ),
    ("list.jsonl", '{"question": ["a", "b"], "answer": "x"}\n', "line 1: 'question' holds a JSON list"),
    (
        "u2028.jsonl",
        '{"question": "one\u2028two\u0085three", "answer": "a"}\n\n{"question": "q", "answer": "b"}\n{"question": \n',
        "line 4 is not valid JSON",
    ),
    (
        "crlf_broken.jsonl",
        '{"question": "q", "answer": "a"}\r\n{"question": "q2" "answer": "b"}\r\n',
        "line 2 is not valid JSON",
    ),
    (
        "noheader.csv",
        "1,2\n3,4\n",
        "columns found: '1', '2' (the first row is read as the header: does the file have one?)",
    ),
    (
        "prose.csv",
        "What is AI?,Artificial intelligence.\nWho are you?,A bot.\n",
        "columns found: 'What is AI?', 'Artificial intelligence.' (the first row is read as the header",
    ),
    ("tabs.csv", "question\tanswer\nq\ta\n", "the header is a single column: is the delimiter right"),
    ("commas.tsv", "question,answer\nq,a\n", "the header is a single column: is the delimiter right"),
    ("binary.csv", bytes(range(256)) * 4, "is not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "message"), HOSTILE_ERRORS, ids=[c[0] for c in HOSTILE_ERRORS])
def test_hostile_files_give_one_clear_line(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    path = write(tmp_path / name, content)
    with pytest.raises(UserError) as error:
        load_pairs(str(path))
    text = str(error.value)
    assert message in text
    assert "\n" not in text
    assert name in text


@pytest.mark.parametrize(
    ("name", "content", "questions", "answers"),
    [
        (
            "bom_crlf.tsv",
            b'\xef\xbb\xbfquestion\tanswer\r\nq1\ta1\r\n"multi\r\nline"\ta2\r\n',
            ["q1", "multi\r\nline"],
            ["a1", "a2"],
        ),
        (
            "bom_crlf.jsonl",
            b'\xef\xbb\xbf{"question": "q1", "answer": "a1"}\r\n\r\n{"question": "q2", "answer": "a2"}\r\n',
            ["q1", "q2"],
            ["a1", "a2"],
        ),
        (
            "separators.jsonl",
            '{"question": "a\u2028b\u0085c", "answer": "x"}\n'.encode(),
            ["a\u2028b\u0085c"],
            ["x"],
        ),
        ("old_mac.csv", b"question,answer\rq1,a1\rq2,a2\r", ["q1", "q2"], ["a1", "a2"]),
        ("numbers.csv", b"question,answer\n1,2\n3.50,0007\n", ["1", "3.50"], ["2", "0007"]),
        (
            "numbers.jsonl",
            b'{"question": 1, "answer": 2.5}\n{"question": 1e3, "answer": true}\n',
            ["1", "1000"],
            ["2.5", "true"],  # as the JSON wrote it,
        ),
        ("nul.csv", b"question,answer\nq\x00x,a\n", ["q\x00x"], ["a"]),
        ("extra_dup.csv", b"question,answer,note,note\nq,a,n1,n2\n", ["q"], ["a"]),
    ],
)
def test_awkward_but_valid_files_load(
    tmp_path: Path, name: str, content: bytes, questions: list, answers: list
) -> None:
    frame, _ = load_pairs(str(write(tmp_path / name, content)))
    assert frame["question"].tolist() == questions
    assert frame["answer"].tolist() == answers


def test_control_characters_and_empty_cells_are_cleaned_and_counted(tmp_path: Path, caplog) -> None:
    rows = faq_rows()
    rows += [
        {"question": "\x00\x07", "answer": "a control-only question"},
        {"question": "question", "answer": "answer"},  # a header pasted again
        {"question": "what is\x00 your\u200b price?", "answer": rows[0]["answer"]},
        {"question": "   ", "answer": "blank"},
    ]
    path = tmp_path / "faq.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    with caplog.at_level(logging.WARNING):
        data = load_qa_data(tiny_config(train=path))
    report = data.reports[str(path)]
    assert (report.dropped_empty, report.dropped_repeated_header) == (2, 1)
    assert (
        "dropped 2 of 52 rows with an empty question after cleaning"
    )  # both were empty questions in caplog.text
    assert "dropped 1 repeated header rows" in caplog.text
    assert "what is your price?" in set(data.all_frames()["question"])


def test_a_1mb_field_loads_and_is_cut_at_max_chars(tmp_path: Path) -> None:
    rows = faq_rows()
    rows[0] = {"question": "price " * 200_000, "answer": "x" * 1_000_000}
    path = tmp_path / "big_field.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    data = load_qa_data(tiny_config(train=path))
    frame = data.all_frames()
    assert frame["question"].str.len().max() <= 10_000  # text.max_chars
    assert frame["answer"].str.len().max() == 1_000_000  # answers are shown in full
    assert len(frame) == len(rows)


def test_200k_rows_load_clean_and_split(tmp_path: Path) -> None:
    rows = 200_000
    words = np.array(
        [
            "what",
            "is",
            "the",
            "price",
            "of",
            "shipping",
            "refund",
            "hours",
            "address",
            "email",
            "plan",
            "order",
        ]
    )
    rng = np.random.default_rng(0)
    questions = [" ".join(rng.choice(words, 5)) + f" {i % 150_000}" for i in range(rows)]
    path = tmp_path / "big.csv"
    pd.DataFrame({"question": questions, "answer": [f"answer {i % 300}" for i in range(rows)]}).to_csv(
        path, index=False
    )
    data = load_qa_data(tiny_config(train=path))
    report = data.reports[str(path)]
    assert report.rows_read == rows
    assert report.rows_kept == rows - report.dropped_duplicates
    sizes = data.splits.sizes()
    assert sum(sizes.values()) == report.rows_kept
    assert data.splits.method == "stratified"
    assert not set(data.splits.train["question"]) & set(data.splits.test["question"])
    assert sizes["test"] == pytest.approx(0.2 * report.rows_kept, rel=0.05)


@pytest.mark.parametrize(
    ("files", "overrides", "message"),
    [
        ({"d.jsonl": '{"question": "q", "answer": "a"}\n{oops}\n'}, [], "line 2 is not valid JSON"),
        ({"d.csv": "question,answer\nq,a\n".encode("utf-16")}, [], "is UTF-16 text"),
        ({"d.csv": "question,question\nq,a\n"}, [], "no column 'answer'"),
        ({}, ["train.batch_size=0"], "config key 'train.batch_size' must be at least 1; got 0"),
        ({}, ["encoder.units=-8"], "config key 'encoder.units' must be at least 1; got -8"),
        ({}, ["encoder.dropout=1"], "config key 'encoder.dropout' must be in [0, 1); got 1.0"),
        ({}, ["train.seed=-1"], "config key 'train.seed' must be at least 0; got -1"),
        (
            {},
            ["train.epoch=3"],
            "unknown config key 'train.epoch' in section 'train' (did you mean 'epochs'?)",
        ),
        ({}, ["data.test_fraction=0.5", "data.validation_fraction=0.5"], "must be below 1"),
    ],
)
def test_the_cli_prints_one_line_exits_2_and_writes_nothing(
    tmp_path: Path, capsys, files: dict, overrides: list, message: str
) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    for name, content in files.items():
        data = write(tmp_path / name, content)
    output = tmp_path / "run"
    argv = ["train", "--train-data", str(data), "--output", str(output)]
    code = cli.main([*argv, "--set", *overrides] if overrides else argv)
    err = capsys.readouterr().err
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert message in errors[0]
    assert "Traceback" not in err
    assert not output.exists()


def test_out_of_memory_is_a_user_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tensorflow as tf

    from qa_assistant.tasks import ClassificationTask
    from qa_assistant.training.runner import train_run

    def too_big(self):
        message = "OOM when allocating tensor with shape[8,3000000000000] and type float"
        raise tf.errors.ResourceExhaustedError(None, None, message)

    path = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(path, index=False)
    monkeypatch.setattr(ClassificationTask, "build_model", too_big)
    with pytest.raises(
        UserError, match=r"out of memory while training \(a tensor of shape \[8,3000000000000\]"
    ):
        train_run(tiny_config(train=path), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.large  # TensorFlow's allocator retries for ~10 s before it gives up
def test_a_model_too_big_for_memory_is_a_user_error(tmp_path: Path) -> None:
    from qa_assistant.training.runner import train_run

    path = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(path, index=False)
    with pytest.raises(UserError, match=r"out of memory while training \(a tensor of shape .* did not fit\)"):
        train_run(tiny_config("encoder.units=1000000000000", train=path), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_json_lines_report_their_own_line_numbers_after_blank_lines(tmp_path: Path) -> None:
    lines = [json.dumps({"question": f"q{i}", "answer": "a"}) for i in range(5)]
    lines[3] = lines[3][:-1]  # line 5 of the file, which has a blank line 2
    path = write(tmp_path / "d.jsonl", "\n\n".join(lines[:2]) + "\n" + "\n".join(lines[2:]) + "\n")
    with pytest.raises(UserError, match="line 5 is not valid JSON"):
        load_pairs(str(path))
