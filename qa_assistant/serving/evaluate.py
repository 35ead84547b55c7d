"""`qa-assistant evaluate`: metrics of a run directory or an export on a data file."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from qa_assistant.config import Config, from_dict, load_config
from qa_assistant.data.prepare import clean_pairs, settle_forms
from qa_assistant.data.sources import MissingColumnsError, columns_hint, load_pairs
from qa_assistant.errors import UserError
from qa_assistant.layout import (
    ANSWERS_FILE,
    CONFIG_FILE,
    EXTRA_DIR,
    LABELS_FILE,
    RETRIEVAL_FILE,
    check_finished_run,
    has_trained_model,
    resolve_export,
)
from qa_assistant.metrics.generation import evaluate_generation
from qa_assistant.metrics.ranking import (
    classification_metrics,
    group_references,
    rank_lists,
    ranking_metrics,
    selective_metrics,
)
from qa_assistant.serving.assistant import Assistant
from qa_assistant.serving.savedmodel import variable_texts
from qa_assistant.tasks.retrieval.bank import BANK_COLLECTION, BANK_FIELDS
from qa_assistant.tasks.runs import load_run

log = logging.getLogger(__name__)
# The column names of the split files a run writes (RUN_DIR/data/), whatever its data's were.
CANONICAL_COLUMNS = ("question", "answer")


def evaluate_path(model: str | Path, data: str) -> dict[str, float]:
    """Evaluates a run directory (in-process model) or an export (its signature) on `data`.

    Both score each distinct question of `data` once, a hit on any of its
    answers counting, with one tie rule (`metrics/ranking.py`). A run
    directory ranks every answer; an export only returns its `top_k`, so
    there the metrics are the ones `top_k` answers determine (`mrr_at_10`,
    `recall_at_k` for k <= top_k), unless it returned fewer answers than its
    `top_k` (the whole bank): then the ranking is complete and `mrr` is
    reported too. A generation or language-model export is measured with its
    `serving_default` and `score` signatures, giving the same metrics as
    its run directory.

    Raises:
        UserError: not a run or export, or a bad data file.
    """
    model = Path(model)
    # The data are read before the model loads (a language model's takes tens of seconds): a bad
    # file is reported at once.
    if has_trained_model(model):
        frame = _load(load_config([check_finished_run(model) / CONFIG_FILE]), data)
        config, task, keras_model = load_run(model)
        labels = _json_list(model / LABELS_FILE)
        _settle(frame, config, labels or _json_list(model / ANSWERS_FILE))
        _warn_unknown_classes(config, frame, labels, data)
        metrics, _ = task.evaluate(keras_model, frame)
    else:
        try:
            export = resolve_export(model)
        except UserError:  # its message names exports only; a run directory would do too
            raise UserError(
                f"'{model}' is neither a trained run directory nor an exported model; expected RUN_DIR "
                "(as qa-assistant train wrote it), saved_models/NAME or saved_models/NAME/VERSION"
            ) from None
        config = export_config(export)
        frame = _load(config, data)
        assistant = Assistant(export)
        labels = _json_list(assistant.path / EXTRA_DIR / LABELS_FILE)
        bank = assistant.tracked(BANK_COLLECTION)
        answers = None if bank is None else variable_texts(bank[BANK_FIELDS.index("answers")])
        _settle(frame, config, labels or answers or [])
        _warn_unknown_classes(config, frame, labels, data)
        if config.task.type in ("generate", "lm"):  # both generate answers (tasks/lm/generator.py)
            metrics = _evaluate_generation_export(assistant, frame)
        else:
            if config.task.type == "retrieve" and answers is not None:
                _warn_answers_outside_the_bank(answers, assistant.path, frame, data)
            metrics = _evaluate_ranking_export(assistant, config, frame)
    metrics["num_examples"] = len(frame)
    return metrics


def _settle(frame: Any, config: Config, known: list[str]) -> None:
    """The file's answers (a classifier's labels) written as the model writes them where they
    differ only in spacing or NFKC-folded characters (`settle_forms`); in place."""
    column = config.data.target if config.task.type == "classify" else "answer"
    if known and column != "question":
        frame[column] = settle_forms(frame[column].tolist(), config.text, known)


def _json_list(path: Path) -> list[str]:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def _warn_unknown_classes(config: Config, frame: Any, labels: list[str], spec: str) -> None:
    """A warning when a classifier is asked about classes it never learned (as `train --test-data` warns)."""
    if config.task.type != "classify" or not labels:
        return
    known = set(labels)
    target = config.data.target
    unseen = int((~frame[target].isin(known)).sum())
    if unseen:
        log.warning(
            "%d of %d examples in '%s' have a value of '%s' the model never saw in training (it knows %d); "
            "they cannot be predicted and count as errors%s",
            unseen,
            len(frame),
            spec,
            target,
            len(known),
            ": is this the model's kind of data?" if unseen == len(frame) else "",
        )


def _warn_answers_outside_the_bank(bank: list[str], export: Path, frame: Any, spec: str) -> None:
    """A warning when a retrieval export (`bank`: its answers) is asked questions whose answers
    its bank lacks.

    A run directory adds such answers to its bank before ranking; an export can only
    return what its bank holds (`qa-assistant index` adds answers).
    """
    answers = set(bank)
    outside = int((~frame["answer"].isin(answers)).sum())
    if outside:
        log.warning(
            "%d of %d examples in '%s' have an answer that is not in the export's bank (%d answers); "
            "they count as misses (add them with: qa-assistant index --model %s --answers FILE --name NAME)",
            outside,
            len(frame),
            spec,
            len(answers),
            export,
        )


def _evaluate_ranking_export(assistant: Any, config: Config, frame: Any) -> dict[str, Any]:
    """Classification or retrieval metrics of an export, per distinct question, from its `top_k` lists."""
    target = config.data.target if config.task.type == "classify" else "answer"
    questions, references = group_references(frame["question"].tolist(), frame[target].tolist())
    out = assistant.raw(questions)
    ranked = [[a.decode("utf-8") for a in row] for row in out["top_k_answers"]]
    scored = rank_lists(ranked, np.asarray(out["top_k_scores"]), references)
    returned = int(np.asarray(out["top_k_answers"]).shape[1])
    # Fewer answers than `top_k` means the export returned its whole bank: a full ranking.
    depth = None if returned < config.export.top_k else returned
    metrics: dict[str, Any] = ranking_metrics(scored.rank, depth)
    predicted = [a.decode("utf-8") for a in out["answer"]]
    if config.task.type == "classify":
        metrics.update(classification_metrics(references, predicted))
    else:
        # Retrieval: accuracy is recall@1 (the best-ranked answer), as in a
        # run's metrics; the fallback is measured apart, as a run measures it.
        metrics["accuracy"] = metrics["recall_at_1"]
        score = np.asarray(out["score"])
        metrics.update(
            selective_metrics(
                score, scored.correct, _answered(assistant.path, config, out, score, predicted, scored)
            )
        )
    metrics["num_questions"] = len(questions)
    return metrics


def _answered(
    path: Path, config: Config, out: Mapping[str, Any], score: np.ndarray, predicted: list[str], scored: Any
) -> np.ndarray:
    """Which questions a retrieval export answered rather than gave its fallback answer.

    Its own `answered` output says so. Exports made before it: by the
    threshold the export was built with (`assets.extra/retrieval.json`), as
    the run decides (a fallback text that is also a bank answer cannot tell
    the two apart); without that file either, by whether it replaced its
    best-ranked answer.
    """
    if "answered" in out:
        return np.asarray(out["answered"], bool)
    state = path / EXTRA_DIR / RETRIEVAL_FILE
    if state.is_file():
        threshold = json.loads(state.read_text(encoding="utf-8")).get("threshold")
        if threshold is None or config.task.fallback_answer is None:
            return np.ones(len(score), bool)
        return score >= np.float32(threshold)  # as the export's float32 graph compares
    return np.asarray([p == b for p, b in zip(predicted, scored.predicted, strict=True)], bool)


def _evaluate_generation_export(assistant: Any, frame: Any) -> dict[str, float]:
    """Generation metrics from the export's own signatures (`serving_default`, `score`)."""
    import tensorflow as tf  # deferred: start-up time

    score = assistant.signature("score")

    def likelihood(questions: list[str], answers: list[str]) -> dict[str, Any]:
        return score(question=tf.constant(questions, tf.string), answer=tf.constant(answers, tf.string))

    metrics, _ = evaluate_generation(frame, assistant.raw, likelihood if score is not None else None)
    return metrics


def export_config(path: Path) -> Config:
    """The config an export was trained with (`assets.extra/config.yaml`), or the defaults."""
    extra = path / EXTRA_DIR / CONFIG_FILE
    if not extra.is_file():
        log.warning("%s has no assets.extra/config.yaml; assuming default cleaning and columns", path)
        return from_dict({})
    return from_dict(yaml.safe_load(extra.read_text(encoding="utf-8")))


def _load(config: Config, spec: str):
    """The cleaned rows of `spec`, read as `read_model_pairs` reads them (the test split of a TFDS spec)."""
    target = config.data.target
    labels = () if config.task.type != "classify" or target in ("answer", "question") else (target,)
    raw = read_model_pairs(config, spec, extra_columns=labels, default_split="test")
    frame, _ = clean_pairs(raw, config.text, deduplicate=False, label_columns=labels, source=spec)
    return frame


def read_model_pairs(
    config: Config, spec: str, *, extra_columns: tuple[str, ...] = (), default_split: str = "train"
) -> Any:
    """The rows of `spec` for a trained model: read with the model's column names or, failing
    those, `question`/`answer`.

    A run trained on a file with other column names (`data.question_column: q`)
    still writes its splits (`RUN_DIR/data/*.jsonl`) as `question`/`answer`, and
    those must read too. The commands that call this (`evaluate`, `index`) take
    no `--set`, so a file with neither pair is told to rename its columns.

    Raises:
        UserError: a bad data file, or neither pair of columns (with `extra_columns`).
    """
    model_columns = (config.data.question_column, config.data.answer_column)
    tried = list(dict.fromkeys([model_columns, CANONICAL_COLUMNS]))
    for question, answer in tried:
        try:
            raw, _ = load_pairs(
                spec,
                question_column=question,
                answer_column=answer,
                extra_columns=extra_columns,
                default_split=default_split,
            )
            return raw
        except MissingColumnsError as error:
            found = error.found
    expected = " or ".join(", ".join(repr(c) for c in (*pair, *extra_columns)) for pair in tried)
    shown = ", ".join(repr(c) for c in found[:20]) or "none"
    hint = columns_hint([c for c in (*model_columns, *extra_columns) if c not in found], found)
    raise MissingColumnsError(
        f"'{spec}' has the columns {shown}{hint}; expected {expected} (the model's columns, or those "
        "of a run's own split files): rename the file's columns",
        found,
    )
