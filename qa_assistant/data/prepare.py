"""Cleaning and de-duplicating loaded pairs, with counts of what was dropped.

Questions are cleaned exactly as the exported model will clean a request
(`TextConfig`), so that training and serving see the same text. Answers and
labels are cleaned for display, since they are what the assistant says back:
never lower-cased, never cut, and with their lines, indentation and
characters as written (`clean_text(lines=True)`: NFC, not NFKC, so `10³`
stays `10³`). Two answers that differ only in spacing or in what NFKC
folds are one answer, written as it first appears (`settle_forms`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from qa_assistant.config import TextConfig
from qa_assistant.text.cleaning import clean_text, one_line

log = logging.getLogger(__name__)

_CHUNK = 50_000


# Fewer word characters than this in a question or answer marks a row as suspicious:
# a one-character "turn" is usually a parsing accident, rarely a real answer.
MIN_WORD_CHARACTERS = 2


@dataclass
class CleanReport:
    """Row counts before and after each cleaning step, and rows worth a look.

    Attributes:
        suspicious_short: kept rows whose question or answer has fewer than
            `MIN_WORD_CHARACTERS` letters or digits (kept: "7" can be a real answer).
        near_duplicate_questions: kept distinct questions that share their
            `question_key` with another one ("will you die" / "will you die?");
            splits group them, so they never sit on both sides.
        questions_with_several_answers: distinct questions (by `question_key`) that
            have more than one distinct answer: a label conflict for a classifier of
            answers, several right answers for retrieval (both count as right).
    """

    rows_read: int
    dropped_repeated_header: int
    dropped_empty: int
    dropped_duplicates: int
    rows_kept: int
    suspicious_short: int = 0
    near_duplicate_questions: int = 0
    questions_with_several_answers: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def question_key(questions: pd.Series) -> pd.Series:
    """Each question's phrasing key: lower case, punctuation removed, single spaces.

    A question with no letters or digits keeps its own text as key, so that
    such questions do not all fall into one group.
    """
    text = questions.astype(str)
    key = text.str.lower().str.replace(r"[^\w\s]|_", " ", regex=True).str.split().str.join(" ")
    return key.where(key != "", text)


def _short(values: pd.Series) -> pd.Series:
    return values.astype(str).str.count(r"[^\W_]") < MIN_WORD_CHARACTERS


def clean_strings(values: list[str], text: TextConfig, *, for_display: bool = False) -> list[str]:
    """Runs `clean_text` over a Python list in chunks; returns Python strings."""
    out: list[str] = []
    for start in range(0, len(values), _CHUNK):
        cleaned = clean_text(
            values[start : start + _CHUNK],
            lowercase=text.lowercase and not for_display,
            normalize=text.normalize,
            strip_html=text.strip_html,
            max_chars=None if for_display else text.max_chars,
            lines=for_display,
        )
        out.extend(v.decode("utf-8") for v in np.asarray(cleaned.numpy()).reshape(-1))
    return out


def settle_forms(values: list[str], text: TextConfig, known: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Each display text as the first one, from `known` then `values`, with the same one-line form.

    The one-line form is `text.cleaning.one_line` (NFKC as `text.normalize`
    says, whitespace collapsed, case kept), the form metrics compare answers
    in. So answers that differ only in spacing, line breaks or compatibility
    characters count as one answer, shown as it was first written; `known`
    (a model's answers) wins, so an export made before answers kept their
    lines still finds its own answers in a file.

    Example:

    >>> from qa_assistant.config import TextConfig
    >>> settle_forms(["A  b", "A b", "c"], TextConfig(), known=["A\\nb"])
    ['A\\nb', 'A\\nb', 'c']
    """
    every = [*known, *values]
    keys = [one_line(value, text.normalize) for value in every]
    first: dict[str, str] = {}
    for key, value in zip(keys, every, strict=True):
        first.setdefault(key, value)
    return [first[key] for key in keys[len(known) :]]


def clean_pairs(
    frame: pd.DataFrame,
    text: TextConfig,
    *,
    deduplicate: bool = True,
    label_columns: tuple[str, ...] = (),
    header: tuple[str, str] = ("question", "answer"),
    source: str = "data",
) -> tuple[pd.DataFrame, CleanReport]:
    """Cleans `question`, `answer` and label columns; drops empty and repeated rows.

    Args:
        frame: output of `load_pairs`.
        text: cleaning options (applied to questions as the model sees them).
        deduplicate: drop rows whose cleaned (question, answer, labels) repeat.
        label_columns: other columns cleaned for display (e.g. `category`).
        header: the source's original column names; rows repeating them (a
            header pasted twice) are dropped.
        source: name used in warnings.

    Returns:
        `(clean_frame, report)`; the frame is re-indexed from 0.
    """
    rows_read = len(frame)
    # A header pasted twice may bring its file's byte-order mark along (two files joined with cat).
    cells = {c: frame[c].str.replace("\ufeff", "", regex=False).str.strip() for c in ("question", "answer")}
    is_header = (cells["question"] == header[0].strip()) & (cells["answer"] == header[1].strip())
    frame = frame.loc[~is_header].copy()
    frame["question"] = clean_strings(frame["question"].tolist(), text)
    frame["answer"] = settle_forms(clean_strings(frame["answer"].tolist(), text, for_display=True), text)
    columns = ["question", "answer"]
    for column in label_columns:
        if column not in columns:
            frame[column] = settle_forms(clean_strings(frame[column].tolist(), text, for_display=True), text)
            columns.append(column)
    blank = frame[columns] == ""
    empty = blank.any(axis=1)
    empty_in = [c if c in ("question", "answer") else repr(c) for c in columns if blank[c].any()]
    frame = frame.loc[~empty]
    before_dedup = len(frame)
    if deduplicate:
        frame = frame.drop_duplicates(subset=columns)
    short = _short(frame["question"]) | _short(frame["answer"])
    distinct = pd.Series(frame["question"].unique(), dtype=object)
    report = CleanReport(
        rows_read=rows_read,
        dropped_repeated_header=int(is_header.sum()),
        dropped_empty=int(empty.sum()),
        dropped_duplicates=before_dedup - len(frame),
        rows_kept=len(frame),
        suspicious_short=int(short.sum()),
        near_duplicate_questions=len(distinct) - question_key(distinct).nunique(),
        questions_with_several_answers=_several_answers(frame),
    )
    _log_report(report, frame.loc[short], source, empty_in)
    return frame.reset_index(drop=True), report


def _several_answers(frame: pd.DataFrame) -> int:
    """Distinct questions (by `question_key`) with more than one distinct answer."""
    if frame.empty:
        return 0
    answers = frame.groupby(question_key(frame["question"]).to_numpy())["answer"].nunique()
    return int((answers > 1).sum())


def either(names: list[str]) -> str:
    """`a`, `a or b`, `a, b or c`: for messages.

    >>> either(["question"]), either(["question", "answer", "'category'"])
    ('question', "question, answer or 'category'")
    """
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _log_report(report: CleanReport, short_rows: pd.DataFrame, source: str, empty_in: list[str]) -> None:
    """One summary line per source, and a warning with examples for each kind of suspicious row."""
    log.info(
        "data quality of %s: %d rows read; dropped %d empty, %d repeated headers, %d duplicates; "
        "%d kept; %d with a question or answer under %d letters/digits; "
        "questions differing from another only in case, punctuation or spacing: %d; "
        "questions with more than one answer: %d",
        source,
        report.rows_read,
        report.dropped_empty,
        report.dropped_repeated_header,
        report.dropped_duplicates,
        report.rows_kept,
        report.suspicious_short,
        MIN_WORD_CHARACTERS,
        report.near_duplicate_questions,
        report.questions_with_several_answers,
    )
    if report.dropped_empty:
        log.warning(
            "%s: dropped %d of %d rows with an empty %s after cleaning",
            source,
            report.dropped_empty,
            report.rows_read,
            either(empty_in),
        )
    if report.dropped_repeated_header:
        log.warning("%s: dropped %d repeated header rows", source, report.dropped_repeated_header)
    if report.suspicious_short:
        examples = "; ".join(
            f"{q!r} -> {a!r}" for q, a in short_rows[["question", "answer"]].head(3).to_numpy()
        )
        log.warning(
            "%s: %d rows have a question or answer with fewer than %d letters/digits (kept; check them), e.g. %s",
            source,
            report.suspicious_short,
            MIN_WORD_CHARACTERS,
            examples,
        )
