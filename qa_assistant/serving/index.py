"""`qa-assistant index`: grow a retrieval export's answer bank without retraining.

The export is reloaded with TensorFlow alone; new answers (and the questions
given with them, shown as "matched question") are embedded by the export's
own `embed_answers` / `embed_questions` signatures, appended to its bank
variables, and the whole SavedModel is saved again as the next version of
`saved_models/NAME/`, after the same reload-and-compare check as `export`.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from qa_assistant.data.prepare import clean_strings, settle_forms
from qa_assistant.errors import UserError
from qa_assistant.layout import EXTRA_DIR, INDEX_FILE, model_directory, resolve_export
from qa_assistant.serving.evaluate import export_config, read_model_pairs
from qa_assistant.serving.export import HOSTILE_QUESTIONS, check_parity, publish, replay_warmup
from qa_assistant.serving.savedmodel import INPUT_NAME, SIGNATURE, load_signature, variable_texts
from qa_assistant.serving.warmup import WARMUP_FILE, rename_warmup
from qa_assistant.tasks.retrieval.bank import BANK_COLLECTION, BANK_FIELDS

log = logging.getLogger(__name__)

_BATCH = 256


@dataclass
class IndexResult:
    """Where the new version went and what it added."""

    version_dir: Path
    added_answers: int
    added_questions: int
    bank_size: int


def index_answers(
    model: str | Path, answers_file: str, name: str, saved_models: str | Path = "saved_models"
) -> IndexResult:
    """Writes a new export version whose bank also holds the answers of `answers_file`.

    Args:
        model: a retrieval export (`saved_models/NAME` or a version directory).
        answers_file: CSV/TSV/JSONL with the export's question and answer
            columns; an empty question cell adds the answer alone.
        name: model name of the new version (`saved_models/NAME/<next>`).
        saved_models: the export root.

    Returns:
        The new version and counts.

    Raises:
        UserError: not a retrieval export, a bad file, or nothing new in it.

    Example:

    >>> index_answers("saved_models/faq", "new.csv", "faq")  # doctest: +SKIP
    IndexResult(version_dir=PosixPath('saved_models/faq/2'), added_answers=3, ...)
    """
    model_dir = model_directory(saved_models, name)
    source = resolve_export(model)
    load_signature(source)  # registers tensorflow-text ops before the full load
    loaded = tf.saved_model.load(str(source))
    bank = getattr(loaded, BANK_COLLECTION, None)
    if bank is None or "embed_answers" not in loaded.signatures:
        raise UserError(
            f"'{source}' is not a retrieval export (no answer bank); expected one from task.type retrieve"
        )
    variables = dict(zip(BANK_FIELDS, bank, strict=True))
    questions, answers = _read_pairs(source, answers_file, variable_texts(variables["answers"]))
    added_answers, added_questions = _grow(loaded, variables, questions, answers)
    if not added_answers and not added_questions:
        raise UserError(f"'{answers_file}' adds nothing: every answer and question is already in '{source}'")

    def stage(staging: Path) -> None:
        tf.saved_model.save(loaded, str(staging), signatures=dict(loaded.signatures))
        _copy_extra(source, staging, name, answers_file, added_answers, added_questions)
        warmup = staging / EXTRA_DIR / WARMUP_FILE
        probe = [*added_questions[:16], *added_answers[:16], *HOSTILE_QUESTIONS]
        expected = loaded.signatures[SIGNATURE](**{INPUT_NAME: tf.constant(probe)})
        serve = load_signature(staging)
        check_parity(serve, {k: v.numpy() for k, v in expected.items()}, probe)
        if warmup.is_file():
            replay_warmup(serve, warmup)

    version_dir = publish(model_dir, stage, "index")
    size = len(variables["answers"].numpy())
    log.debug(  # `qa-assistant index` prints the same
        "indexed %d answers and %d questions -> %s (%d answers)",
        len(added_answers),
        len(added_questions),
        version_dir,
        size,
    )
    return IndexResult(version_dir, len(added_answers), len(added_questions), size)


def _read_pairs(source: Path, spec: str, bank: list[str]) -> tuple[list[str], list[str]]:
    """Questions (cleaned as requests are) and answers (cleaned for display, written as the bank
    writes them where it holds them already) of `spec`."""
    config = export_config(source)
    raw = read_model_pairs(config, spec)
    answers = clean_strings(raw["answer"].astype(str).tolist(), config.text, for_display=True)
    answers = settle_forms(answers, config.text, bank)
    questions = clean_strings(raw["question"].astype(str).tolist(), config.text)
    keep = [i for i, a in enumerate(answers) if a]
    if not keep:
        raise UserError(f"'{spec}' has no non-empty answers")
    return [questions[i] for i in keep], [answers[i] for i in keep]


def _embed(loaded: object, signature: str, texts: list[str]) -> tf.Tensor:
    fn = loaded.signatures[signature]
    parts = [fn(text=tf.constant(texts[i : i + _BATCH]))["embedding"] for i in range(0, len(texts), _BATCH)]
    return tf.concat(parts, axis=0)


def _grow(
    loaded: object, variables: dict[str, tf.Variable], questions: list[str], answers: list[str]
) -> tuple[list[str], list[str]]:
    bank = variable_texts(variables["answers"])
    present = set(bank)
    new_answers = [a for a in dict.fromkeys(answers) if a not in present]
    if new_answers:
        variables["answers"].assign(tf.concat([variables["answers"], tf.constant(new_answers)], 0))
        vectors = _embed(loaded, "embed_answers", new_answers)
        variables["embeddings"].assign(tf.concat([variables["embeddings"], vectors], 0))
    index = {a: i for i, a in enumerate(bank + new_answers)}
    ids = variables["known_answer_ids"].numpy()
    known = set(zip(variable_texts(variables["known_questions"]), ids.tolist(), strict=True))
    pairs = [(q, index[a]) for q, a in dict.fromkeys(zip(questions, answers, strict=True)) if q]
    pairs = [p for p in pairs if p not in known]
    if pairs:
        texts = [q for q, _ in pairs]
        variables["known_questions"].assign(tf.concat([variables["known_questions"], tf.constant(texts)], 0))
        vectors = _embed(loaded, "embed_questions", texts)
        variables["known_embeddings"].assign(tf.concat([variables["known_embeddings"], vectors], 0))
        new_ids = np.asarray([i for _, i in pairs], dtype=np.int32)
        variables["known_answer_ids"].assign(tf.concat([variables["known_answer_ids"], new_ids], 0))
    return new_answers, [q for q, _ in pairs]


def _copy_extra(
    source: Path, staging: Path, name: str, spec: str, answers: list[str], questions: list[str]
) -> None:
    extra = staging / EXTRA_DIR
    if (source / EXTRA_DIR).is_dir():
        shutil.copytree(source / EXTRA_DIR, extra, dirs_exist_ok=True)
    if (extra / WARMUP_FILE).is_file():
        rename_warmup(extra / WARMUP_FILE, name)  # `--name` may serve the copy under another name
    extra.mkdir(parents=True, exist_ok=True)
    history = extra / INDEX_FILE
    records = json.loads(history.read_text(encoding="utf-8")) if history.is_file() else []
    records.append(
        {
            "source": str(source.resolve()),
            "file": spec,
            "added_answers": len(answers),
            "added_questions": len(questions),
        }
    )
    history.write_text(json.dumps(records, indent=2), encoding="utf-8")
