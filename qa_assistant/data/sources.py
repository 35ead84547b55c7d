"""Reading question/answer pairs from files, the builtin corpus and TFDS.

Every source becomes a pandas DataFrame with string columns `question` and
`answer` (renamed from the configured column names) plus any other columns the
source has (the builtin corpus adds `category`). Problems with the input are
`UserError`s that name the file, what was found and what was expected.

Sources:
    `path/to/file.csv|.tsv|.jsonl`  a file with a header / JSON objects;
    `builtin:chatterbot`            the English chatterbot-corpus (offline);
    `tfds:NAME[#SPLIT]`             a tensorflow-datasets dataset; NAME may
                                    carry a config and version
                                    (`glue/mrpc:2.0.0`); SPLIT defaults to
                                    `train` (or `test` for `--test-data`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from qa_assistant.config import DataConfig
from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

FILE_FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}
BUILTINS = ("chatterbot",)


@dataclass
class SourceInfo:
    """What was read: for the run manifest and the log.

    `sha256` is the hash of a file's bytes; for `builtin:` and `tfds:`
    sources, which are not one file, of the rows read (as JSON lines).
    """

    source: str
    rows: int
    sha256: str | None = None


def _rows_sha256(frame: pd.DataFrame) -> str:
    text = frame.to_json(orient="records", lines=True, force_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def label_columns(target: str) -> tuple[str, ...]:
    """The column a classification `target` adds to question and answer: none for `answer`/`question`."""
    return () if target in ("answer", "question") else (target,)


def load_configured(
    data: DataConfig, spec: str, default_split: str = "train"
) -> tuple[pd.DataFrame, SourceInfo]:
    """`load_pairs` of `spec` with the columns `data` names (its label column included)."""
    return load_pairs(
        spec,
        question_column=data.question_column,
        answer_column=data.answer_column,
        extra_columns=label_columns(data.target),
        default_split=default_split,
    )


def check_files(data: DataConfig) -> None:
    """Reads `data.train` and `data.test` where they are local files, as a run will.

    For the command line: a missing or unreadable file, or a missing column, is
    reported before TensorFlow loads (about 10 s on 2 cores) rather than after.
    A `builtin:` source is checked by name; `tfds:` sources are left to the run.

    Raises:
        UserError: as `load_pairs`, or an unknown builtin name.
    """
    for spec in (data.train, data.test):
        if spec is None or spec.startswith("tfds:"):
            continue
        if spec.startswith("builtin:"):
            _check_builtin(spec[len("builtin:") :])
        else:
            load_configured(data, spec)


def _check_builtin(name: str) -> None:
    if name not in BUILTINS:
        raise UserError(f"unknown builtin data set '{name}'; expected one of: {', '.join(BUILTINS)}")


class MissingColumnsError(UserError):
    """The source was read but lacks a question, answer or label column.

    `found` holds the columns it has, for callers that word the fix their own way.
    """

    def __init__(self, message: str, found: list[str] | None = None) -> None:
        super().__init__(message)
        self.found = found or []


def load_pairs(
    spec: str,
    *,
    question_column: str = "question",
    answer_column: str = "answer",
    extra_columns: tuple[str, ...] = (),
    default_split: str = "train",
) -> tuple[pd.DataFrame, SourceInfo]:
    """Loads one source as a DataFrame of strings.

    Args:
        spec: a file path, `builtin:NAME` or `tfds:NAME[#SPLIT]`.
        question_column: the source's question column / feature key.
        answer_column: the source's answer column / feature key.
        extra_columns: further columns that must exist (e.g. a label column).
        default_split: TFDS split when the spec names none.

    Returns:
        `(frame, info)`; the frame has `question` and `answer` columns; empty
        cells are empty strings (counted and dropped later, in cleaning).

    Raises:
        UserError: missing/unreadable/empty file, missing columns, bad JSON.
    """
    if spec.startswith("builtin:"):
        frame, info = _load_builtin(spec[len("builtin:") :])
    elif spec.startswith("tfds:"):
        frame, info = _load_tfds(spec[len("tfds:") :], question_column, answer_column, default_split)
        question_column, answer_column = "question", "answer"
    else:
        frame, info = _load_file(Path(spec))
    required = [question_column, answer_column, *extra_columns]
    missing = [c for c in dict.fromkeys(required) if c not in frame.columns]
    if missing:
        found = [str(c) for c in frame.columns]
        raise MissingColumnsError(_missing_columns_message(spec, missing, found, extra_columns), found)
    repeated = [c for c in dict.fromkeys(required) if c in frame.attrs.get("repeated_columns", ())]
    if repeated:
        raise UserError(
            f"'{spec}' has the column {', '.join(repr(c) for c in repeated)} more than once in its header; "
            "expected each column name once (rename or delete the extra column)"
        )
    _check_scalars(frame, list(dict.fromkeys(required)), spec)
    # A file may hold both `question` and the configured `question_fr`: the
    # configured column is the one to learn, so the other is set aside.
    renames = {question_column: "question", answer_column: "answer"}
    shadowed = [c for c in renames.values() if c in frame.columns and c not in renames]
    frame = frame.drop(columns=shadowed).rename(columns=renames)
    frame = frame.loc[:, ~frame.columns.duplicated()]
    return frame.astype(object).fillna("").map(_as_text), info


def _check_scalars(frame: pd.DataFrame, columns: list[str], spec: str) -> None:
    """JSON objects or lists in a used column are an error (they have no text form to learn)."""
    for column in columns:
        nested = frame[column].map(lambda v: isinstance(v, (dict, list))).to_numpy()
        if nested.any():
            row = int(nested.argmax())
            lines = frame.attrs.get("line_numbers")
            where = f"line {lines[row]}" if lines else f"row {row + 1}"
            kind = "object" if isinstance(frame[column].iloc[row], dict) else "list"
            raise UserError(f"'{spec}' {where}: '{column}' holds a JSON {kind}; expected text or a number")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):  # as the JSON file wrote it, not Python's True/False
        return "true" if value else "false"
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def columns_hint(missing: list[str], found: list[str]) -> str:
    """A guess at why a file lacks columns: a wrong delimiter, or no header row ("" if neither).

    A header of numbers, or with a sentence in it ("What is AI?", three words or
    more), is a first data row read as the header; other names (`prompt`,
    `Question Text`) are just other names. pandas' index column (`Unnamed: 0`)
    is left out of the judgement.
    """
    if len(found) == 1 and any(sep in found[0] for sep in ";|\t,"):
        return " (the header is a single column: is the delimiter right for this file type?)"
    cells = [c.strip() for c in found if not re.fullmatch(r"Unnamed: \d+", c)]
    numbers = bool(cells) and all(_is_number(c) for c in cells)
    sentence = any(c.endswith(("?", ".", "!")) or len(c.split()) >= 3 for c in cells)
    if missing and (numbers or sentence):
        return " (the first row is read as the header: does the file have one?)"
    return ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _missing_columns_message(spec: str, missing: list[str], found: list[str], labels: tuple[str, ...]) -> str:
    shown = ", ".join(repr(c) for c in found[:20]) or "none"
    hint = columns_hint(missing, found)
    if all(c in labels for c in missing):  # only the classification target's column
        fix = "set data.target to one of the columns found, or to answer"
    else:
        fix = "set data.question_column / data.answer_column to use other names"
    return (
        f"'{spec}' has no column{'s' if len(missing) > 1 else ''} {', '.join(repr(c) for c in missing)}; "
        f"columns found: {shown}{hint}; {fix}"
    )


def _load_file(path: Path) -> tuple[pd.DataFrame, SourceInfo]:
    if not path.exists():
        raise UserError(f"data file '{path}' does not exist; expected a CSV, TSV or JSONL file")
    if path.is_dir():
        raise UserError(f"data path '{path}' is a directory; expected a CSV, TSV or JSONL file")
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise UserError(
            f"data file '{path}' has extension '{suffix or '(none)'}'; expected one of: "
            f"{', '.join(FILE_FORMATS)} (or builtin:chatterbot, tfds:NAME)"
        )
    raw = path.read_bytes()
    text = _decode_utf8(raw, path)
    if not text.strip():
        raise UserError(f"data file '{path}' is empty; expected a header row and question/answer rows")
    if FILE_FORMATS[suffix] is None:
        frame = _read_jsonl(text, path)
    else:
        frame = _read_delimited(text, FILE_FORMATS[suffix], path)
    if frame.empty:
        if FILE_FORMATS[suffix] is None:
            raise UserError(
                f"data file '{path}' has no fields in any of its objects; expected question/answer keys"
            )
        raise UserError(f"data file '{path}' has a header but no rows")
    return frame, SourceInfo(str(path), len(frame), hashlib.sha256(raw).hexdigest())


_UTF16_32_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def _decode_utf8(raw: bytes, path: Path) -> str:
    for bom, name in _UTF16_32_BOMS.items():
        if raw.startswith(bom):
            raise UserError(
                f"data file '{path}' is {name} text (byte-order mark {bom.hex()}); "
                "expected UTF-8 (re-save the file as UTF-8)"
            )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        byte = raw[error.start : error.start + 1].hex()
        raise UserError(
            f"data file '{path}' is not UTF-8: undecodable byte 0x{byte} on line {line}; "
            "expected UTF-8 text (re-save the file as UTF-8)"
        ) from None


def _read_delimited(text: str, sep: str, path: Path) -> pd.DataFrame:
    quoting = csv.QUOTE_MINIMAL
    if sep == "\t" and '"' in text and not _quotes_enclose_fields(text, sep):
        # TSV has no quoting rule of its own: a text that merely starts with a
        # quote ("Hi" she said) would lose its quotes, and an unclosed one would
        # swallow the rows after it. Quotes that do not wrap whole fields are text.
        if path not in _QUOTES_WARNED:  # the command line's check reads the file before the run does
            _QUOTES_WARNED.add(path)
            log.warning("'%s': its quotes do not enclose whole fields; reading them as text", path)
        quoting = csv.QUOTE_NONE
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=True,
            quoting=quoting,
        )
    except pd.errors.ParserError as error:
        wide = _first_wide_row(text, sep, quoting)
        if wide is not None:  # pandas counts records, not lines: say where the row is
            raise UserError(_wide_row_message(wide, sep, path)) from None
        detail = str(error).strip().splitlines()[-1]
        raise UserError(f"data file '{path}' could not be parsed as {_kind(sep)}: {detail}") from None
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas turns the leading fields into an index when the first data rows
        # are wider than the header: every column would silently shift.
        wide = _first_wide_row(text, sep, quoting)
        if wide is None:
            raise UserError(
                f"data file '{path}' has rows wider than its header; expected one field per header column"
            )
        raise UserError(_wide_row_message(wide, sep, path))
    frame.columns = [str(c).strip() for c in frame.columns]
    # pandas renames a repeated header name to "name.1"; remember which were repeated.
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting), [])
    except csv.Error:  # pandas parsed it; a stricter reader's complaint adds nothing
        header = []
    names = [name.strip() for name in header]
    frame.attrs["repeated_columns"] = sorted({n for n in names if names.count(n) > 1})
    return frame


_QUOTES_WARNED: set[Path] = set()


def _quotes_enclose_fields(text: str, sep: str) -> bool:
    """Whether every quote in `text` opens or closes a whole field, and no field swallowed rows.

    A quoted field may hold `sep` or line breaks; one that holds both reads as
    the rows after an unclosed quote.
    """
    limit = csv.field_size_limit(sys.maxsize)  # a long answer is not a quoting error
    try:
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
        return not any(sep in cell and "\n" in cell for row in rows for cell in row)
    except csv.Error:
        return False
    finally:
        csv.field_size_limit(limit)


def _first_wide_row(text: str, sep: str, quoting: int) -> tuple[int, int, int] | None:
    """`(line, fields, header fields)` of the first row wider than the header, or None."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    try:
        header = next(reader, [])
        for row in reader:
            if len(row) > len(header):
                return reader.line_num, len(row), len(header)
    except csv.Error:
        return None
    return None


def _wide_row_message(wide: tuple[int, int, int], sep: str, path: Path) -> str:
    line, fields, header = wide
    return (
        f"data file '{path}' line {line} has {fields} fields but the header has {header}; "
        f"expected one field per header column (quote fields that contain {sep!r})"
    )


def _kind(sep: str) -> str:
    return "CSV" if sep == "," else "TSV"


def _read_jsonl(text: str, path: Path) -> pd.DataFrame:
    rows, numbers = [], []
    # Only "\n" ends a line: str.splitlines() would also split at U+2028 or
    # U+0085, which JSON allows unescaped inside strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_object_once)
        except json.JSONDecodeError as error:
            raise UserError(
                f"data file '{path}' line {number} is not valid JSON ({error.msg}); "
                "expected one JSON object per line"
            ) from None
        except _RepeatedKeyError as repeated:
            raise UserError(
                f"data file '{path}' line {number} has the key '{repeated}' twice; expected each key once"
            ) from None
        if not isinstance(row, dict):
            raise UserError(
                f"data file '{path}' line {number} holds a JSON {type(row).__name__}; "
                'expected a JSON object such as {"question": ..., "answer": ...}'
            )
        rows.append(row)
        numbers.append(number)
    frame = pd.DataFrame(rows, dtype=object)
    frame.attrs["line_numbers"] = numbers
    return frame


class _RepeatedKeyError(Exception):
    pass


def _object_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):
        keys = [key for key, _ in pairs]
        raise _RepeatedKeyError(next(k for k in keys if keys.count(k) > 1))
    return row


def _load_builtin(name: str) -> tuple[pd.DataFrame, SourceInfo]:
    _check_builtin(name)
    import tensorflow_datasets as tfds  # deferred: start-up time

    import qa_assistant.data.chatterbot  # noqa: F401  (registers the builder)

    tfds.disable_progress_bar()  # a one-second build of a bundled corpus needs no bar
    # Read at call time (TFDS reads it once, at import): a process may point it elsewhere later.
    dataset = tfds.load("chatterbot_corpus", split="train", data_dir=os.environ.get("TFDS_DATA_DIR"))
    rows = [
        {key: value.decode("utf-8") for key, value in example.items()} for example in tfds.as_numpy(dataset)
    ]
    frame = pd.DataFrame(rows, columns=["question", "answer", "category"], dtype=object)
    return frame, SourceInfo(f"builtin:{name}", len(frame), _rows_sha256(frame))


def _load_tfds(
    spec: str, question_key: str, answer_key: str, default_split: str
) -> tuple[pd.DataFrame, SourceInfo]:
    import tensorflow_datasets as tfds  # deferred: start-up time

    name, _, split = spec.partition("#")
    split = split or default_split
    try:
        dataset = tfds.load(name, split=split)
    except Exception as error:  # tfds raises many types; all mean "cannot load this"
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"tfds:{spec} could not be loaded ({detail})") from None
    rows = []
    for example in tfds.as_numpy(dataset):
        rows.append(
            {
                "question": _feature(example, question_key, spec),
                "answer": _feature(example, answer_key, spec),
            }
        )
    frame = pd.DataFrame(rows, columns=["question", "answer"], dtype=object)
    return frame, SourceInfo(f"tfds:{name}#{split}", len(rows), _rows_sha256(frame))


def _feature(example: dict[str, Any], key: str, spec: str) -> str:
    """Reads `a/b` nested keys; sequences (e.g. several reference answers) give their first item."""
    value: Any = example
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            keys = ", ".join(sorted(_flat_keys(example)))
            raise UserError(f"tfds:{spec} has no feature '{key}'; features found: {keys}")
        value = value[part]
    if hasattr(value, "shape") and getattr(value, "ndim", 0) > 0:
        value = value[0] if len(value) else ""
    return _as_text(value)


def _flat_keys(example: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in example.items():
        if isinstance(value, dict):
            keys += _flat_keys(value, f"{prefix}{key}/")
        else:
            keys.append(f"{prefix}{key}")
    return keys
