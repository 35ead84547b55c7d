"""Exporting a run as a SavedModel in TF Serving's layout.

`saved_models/NAME/<version>/` holds a SavedModel whose `serving_default`
signature takes `question` (`tf.string`, shape `[None]`) and returns at least
`answer` and `score` (the classifier adds `top_k_answers` / `top_k_scores`;
other tasks add their own outputs). Cleaning and tokenisation run inside the
graph, so clients send raw text. `assets.extra/` carries the run's config,
manifest, vocabulary (`preprocessor/`) and labels (what `train --init-from`
needs to start from the export) and TF Serving's warmup requests
(`serving/warmup.py`).

A version is written to a hidden temporary directory beside its final place
(`.tmp-<host>-<pid>-...`, which TF Serving ignores), reloaded, checked, flushed
to disk and only then renamed to the next free integer: TF Serving (which
watches `saved_models/NAME/`) never sees a partial version, an existing
version is never overwritten, and concurrent exports of one name get distinct
versions. The check, at every export: the reloaded SavedModel's outputs on
validation questions and on hostile ones (empty, control characters, 20,000
characters, ...) equal the in-process model's — strings and integers exactly,
floats within `SCORE_TOLERANCE` — and every warmup record replays. Any
failure, including a full disk, aborts with one clear line and publishes
nothing; leftovers of a killed export are removed by the next one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.atomic import fsync_dir, fsync_tree, remove, remove_stale, temporary_name
from qa_assistant.errors import UserError
from qa_assistant.layout import (
    CONFIG_FILE,
    EXTRA_DIR,
    INDEX_FILE,
    LABELS_FILE,
    MANIFEST_FILE,
    PREPROCESSOR_DIR,
    RETRIEVAL_FILE,
    export_versions,
    model_directory,
    split_file,
    version_numbers,
)
from qa_assistant.manifest import build_manifest, write_json
from qa_assistant.serving.savedmodel import INPUT_NAME, SIGNATURE, load_signature
from qa_assistant.serving.warmup import WARMUP_FILE, read_warmup, warmup_batches, write_warmup
from qa_assistant.tasks.base import ServingBundle
from qa_assistant.tasks.runs import load_run

log = logging.getLogger(__name__)

SCORE_TOLERANCE = 1e-4
# Hostile but valid requests: every export must answer them exactly like the in-process model.
HOSTILE_QUESTIONS = (
    "",
    "   ",
    "?",
    "\x00\x07ctrl\u200b\u202e chars\r\n",
    "emoji 😀🤖 中文問題 مرحبا שלום",
    "word " * 4000,
)


def export_run(
    run_dir: str | Path,
    name: str,
    saved_models: str | Path = "saved_models",
    *,
    parity_questions: int = 32,
) -> Path:
    """Exports a finished run to `saved_models/NAME/<next version>/`.

    Args:
        run_dir: a finished run directory.
        name: model name (one path component).
        saved_models: the root that TF Serving's `model_base_path` points into.
        parity_questions: validation questions used to check that the
            reloaded export answers exactly like the in-process model.

    Returns:
        The new version directory.

    Raises:
        UserError: bad name, unfinished run, an export that fails its check,
            or a write error (disk full); nothing is published then.
    """
    model_dir = model_directory(saved_models, name)
    run_dir = Path(run_dir)
    config, task, model = load_run(run_dir)

    def stage(staging: Path) -> None:
        _stage(task, model, staging, run_dir, name, config.export.top_k, parity_questions)

    indexed = _indexed_newest(model_dir, run_dir)
    version_dir = publish(model_dir, stage, "export")
    log.info("exported %s -> %s", run_dir, version_dir)
    if indexed is not None:
        newest, records = indexed
        log.warning(
            "%s also held %d answer(s) that qa-assistant index added from %s; %s has the run's own bank "
            "and TF Serving now serves it: add them again with qa-assistant index --model %s --answers FILE "
            "--name %s",
            newest,
            sum(int(r.get("added_answers", 0)) for r in records),
            ", ".join(sorted({str(r.get("file")) for r in records})),
            version_dir,
            version_dir,
            name,
        )
    return version_dir


def _indexed_newest(model_dir: Path, run_dir: Path) -> tuple[Path, list[dict[str, Any]]] | None:
    """The newest version of `model_dir` and its `index` records when `qa-assistant index` grew
    it from an export of `run_dir` (a new export of the run leaves those answers out), else `None`."""
    versions = export_versions(model_dir)
    if not versions:
        return None
    newest = model_dir / str(versions[-1])
    try:
        records = json.loads((newest / EXTRA_DIR / INDEX_FILE).read_text(encoding="utf-8"))
        manifest = json.loads((newest / EXTRA_DIR / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # not an index, or unreadable: nothing to say
        return None
    same_run = manifest.get("run_dir") == str(run_dir.resolve())
    return (newest, records) if same_run and isinstance(records, list) and records else None


def current_export(run_dir: str | Path, name: str, saved_models: str | Path = "saved_models") -> Path | None:
    """The newest version of `saved_models/NAME` when it was exported from `run_dir` as the run
    is now (same directory, same run manifest), else `None`.

    `train --name` on a finished run reuses it rather than publishing an identical version
    (TF Serving would load it as new). A version `index` made from that export counts too:
    it is the newest state of that run's model.
    """
    model_dir = model_directory(saved_models, name)
    versions = export_versions(model_dir)
    if not versions:
        return None
    newest = model_dir / str(versions[-1])
    exported = newest / EXTRA_DIR / MANIFEST_FILE
    if not exported.is_file():
        return None
    try:
        manifest = json.loads(exported.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable: not known to be this run's, so export anew
        return None
    run_dir = Path(run_dir)
    same = manifest.get("run_dir") == str(run_dir.resolve()) and manifest.get("run") == _run_manifest(run_dir)
    return newest if same else None


def _run_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's own manifest (`{}` when it has none), as its exports carry it."""
    if not (run_dir / MANIFEST_FILE).is_file():
        return {}
    return json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))


def publish(model_dir: Path, stage: Callable[[Path], None], what: str) -> Path:
    """Publishes a new version of `saved_models/NAME`: stage, check, flush, then rename.

    `stage(staging)` writes and checks a complete version in a hidden
    directory beside its final place (it raises to abort). The staged
    version is flushed to disk and renamed to the next free integer; the
    staging directory is always removed. `export` and `index` both publish
    through here.

    Raises:
        UserError: a write error (disk full) or a failed check; nothing is
            published then and existing versions are untouched.
    """
    created = not model_dir.exists()
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale(model_dir):
            log.info("removed %s, left behind by an interrupted export", stale)
        staging = model_dir / temporary_name(what)
        try:
            stage(staging)
            fsync_tree(staging)
            return _next_version(staging, model_dir)
        finally:
            remove(staging)
    except BaseException as error:  # a write error, a failed check or Ctrl-C
        _remove_if_empty(model_dir, created)
        if isinstance(error, (OSError, tf.errors.OpError)):
            raise UserError(
                f"{what} to '{model_dir}' failed ({_reason(error)}); nothing was published and "
                "existing versions are untouched"
            ) from None
        raise


def _remove_if_empty(model_dir: Path, created: bool) -> None:
    """A model directory this call created and left without a version is not left behind."""
    if created and model_dir.is_dir() and not any(model_dir.iterdir()):
        with contextlib.suppress(OSError):  # another export may have published into it meanwhile
            model_dir.rmdir()


def _stage(
    task: Any, model: keras.Model, staging: Path, run_dir: Path, name: str, top_k: int, count: int
) -> None:
    """Writes and checks a complete version in `staging`."""
    # Each step can take minutes for a language model: the log says which one is running.
    log.info("writing the SavedModel")
    bundle = write_savedmodel(task, model, staging, top_k=top_k)
    _write_extra(staging, run_dir, name)
    questions = _sample_questions(run_dir, count)
    write_warmup(staging / EXTRA_DIR / WARMUP_FILE, name, warmup_batches(questions))
    checked = [*questions, *HOSTILE_QUESTIONS]
    log.info("checking that the export answers %d questions as the run does", len(checked))
    serve = load_signature(staging)
    check_parity(serve, task.export_reference(model, bundle, checked, top_k), checked)
    replay_warmup(serve, staging / EXTRA_DIR / WARMUP_FILE)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}"
    text = str(getattr(error, "message", "") or error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def write_savedmodel(task: Any, model: keras.Model, path: Path, *, top_k: int) -> ServingBundle:
    """Writes the task's serving function (and any further signatures) as a SavedModel at `path`.

    Returns the bundle written, for the parity check to answer from.
    """
    bundle = task.serving_bundle(model, top_k)
    archive = keras.export.ExportArchive()
    for item in bundle.trackables:
        archive.track(item)
    archive.add_endpoint(
        SIGNATURE, bundle.serve, input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)]
    )
    for name, endpoint in bundle.endpoints.items():
        fn, specs = (
            endpoint
            if isinstance(endpoint, tuple)
            else (endpoint, [tf.TensorSpec([None], tf.string, name="text")])
        )
        archive.add_endpoint(name, fn, input_signature=specs)
    for name, variables in bundle.variables.items():
        archive.add_variable_collection(name, variables)
    archive.write_out(str(path), verbose=False)
    return bundle


def _write_extra(staging: Path, run_dir: Path, name: str) -> None:
    extra = staging / EXTRA_DIR
    extra.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / CONFIG_FILE, extra / CONFIG_FILE)
    # The vocabulary and labels, so that `train --init-from` can start from the export itself.
    if (run_dir / PREPROCESSOR_DIR).is_dir():  # a language model's tokenizer is its base model's
        shutil.copytree(run_dir / PREPROCESSOR_DIR, extra / PREPROCESSOR_DIR)
    if (run_dir / LABELS_FILE).is_file():
        shutil.copy2(run_dir / LABELS_FILE, extra / LABELS_FILE)
    if (run_dir / RETRIEVAL_FILE).is_file():  # the fallback threshold, for `evaluate` on the export
        shutil.copy2(run_dir / RETRIEVAL_FILE, extra / RETRIEVAL_FILE)
    write_json(
        extra / MANIFEST_FILE,
        build_manifest(name=name, run_dir=str(run_dir.resolve()), run=_run_manifest(run_dir)),
    )


def _sample_questions(run_dir: Path, count: int) -> list[str]:
    questions: list[str] = []
    for split in ("validation", "test", "train"):
        path = split_file(run_dir, split)
        rows = pd.read_json(path, lines=True, dtype=False) if path.is_file() and path.stat().st_size else None
        if rows is not None and "question" in rows:  # older runs wrote an empty split as "\n": no columns
            questions += rows["question"].astype(str).tolist()
        if len(questions) >= count:
            break
    return questions[:count]


def check_parity(serve: Any, expected: dict[str, np.ndarray], questions: list[str]) -> None:
    """Compares a reloaded signature's outputs with the in-process model's, output by output.

    Generic over outputs: every output the in-process model returns must
    exist in the export with the same shape; strings, integers and booleans
    must be identical, floats equal within `SCORE_TOLERANCE` (absolute).

    Args:
        serve: the export's `serving_default` (`load_signature(path)`).
        expected: in-process outputs for `questions` (`task.predict`).
        questions: the raw questions both were given.

    Raises:
        UserError: the export disagrees with the model it came from.
    """
    got = {k: v.numpy() for k, v in serve(**{INPUT_NAME: tf.constant(questions, dtype=tf.string)}).items()}
    for key in sorted(expected):
        want = np.asarray(expected[key])
        if key not in got:
            raise UserError(
                f"export check failed: the SavedModel has no output '{key}' (it has: {', '.join(sorted(got))})"
            )
        have = got[key]
        if have.shape != want.shape:
            raise UserError(
                f"export check failed: output '{key}' has shape {have.shape}; the in-process model gives {want.shape}"
            )
        if want.dtype.kind in "fc":
            bad = ~np.isclose(have, want, atol=SCORE_TOLERANCE, rtol=0, equal_nan=True)
            how = f"differs by {float(np.nanmax(np.abs(have - want))):.2e} (tolerance {SCORE_TOLERANCE})"
        else:
            bad = np.asarray(have != want)
            how = "differs"
        if bad.any():
            rows = bad.reshape(len(bad), -1).any(axis=1) if bad.ndim else np.array([True])
            question = questions[int(np.argmax(rows))] if bad.ndim and len(bad) == len(questions) else "?"
            raise UserError(f"export check failed: output '{key}' {how} for question {_shown(question)}")


def replay_warmup(serve: Any, path: Path) -> int:
    """Sends every warmup request to `serve`; returns how many there were.

    Raises:
        UserError: a request names another signature or input, or an output
            does not have one row per question.
    """
    requests = read_warmup(path)
    for request in requests:
        if request.signature != SIGNATURE or set(request.inputs) != {INPUT_NAME}:
            raise UserError(
                f"warmup file '{path}' holds a request for {request.signature}({', '.join(request.inputs)}); "
                f"expected {SIGNATURE}({INPUT_NAME})"
            )
        batch = len(request.inputs[INPUT_NAME])
        for key, value in serve(**{INPUT_NAME: tf.constant(request.inputs[INPUT_NAME])}).items():
            if value.shape[:1] != (batch,):
                raise UserError(
                    f"warmup replay failed: output '{key}' has shape {tuple(value.shape)} for {batch} questions"
                )
    return len(requests)


def _shown(question: str) -> str:
    return repr(question if len(question) <= 60 else f"{question[:57]}...")


def _next_version(staging: Path, model_dir: Path) -> Path:
    """Renames `staging` to the next free integer version; safe against concurrent exports."""
    for _ in range(1000):
        numbers = version_numbers(model_dir)
        version_dir = model_dir / str((numbers[-1] if numbers else 0) + 1)
        try:
            os.rename(staging, version_dir)  # fails if another export took this number
        except OSError:
            if version_dir.exists():
                continue
            raise
        fsync_dir(model_dir)
        return version_dir
    raise UserError(f"could not find a free version number under '{model_dir}'")
