"""Exporting a run as a SavedModel in TF Serving's layout.

`saved_models/NAME/<version>/` holds a SavedModel whose `serving_default`
signature takes `question` (`tf.string`, shape `[None]`) and returns at least
`answer`, `score`, `top_k_answers` and `top_k_scores`. Cleaning and
tokenisation run inside the graph, so clients send raw text. `assets.extra/`
carries the run's config and manifest.

A version is written to a hidden temporary directory beside its final place,
reloaded, checked against the in-process model, and only then renamed into
place: TF Serving (which watches `saved_models/NAME/`) never sees a partial
version, and an existing version is never overwritten.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.manifest import build_manifest, write_json

log = logging.getLogger(__name__)

SIGNATURE = "serving_default"
INPUT_NAME = "question"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
SCORE_TOLERANCE = 1e-4


def validate_name(name: str) -> str:
    """A model name is one path component: letters, digits, `.`, `_`, `-`; not `..`."""
    if not _NAME.match(name) or ".." in name:
        raise UserError(
            f"model name {name!r} is not allowed; expected 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no path separators)"
        )
    return name


def version_numbers(model_dir: Path) -> list[int]:
    """Existing integer versions under `saved_models/NAME/`."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir())


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
        UserError: bad name, unfinished run, or an export that fails its check.
    """
    from qa_assistant.training.runner import load_run

    validate_name(name)
    run_dir = Path(run_dir)
    config, task, model = load_run(run_dir)
    model_dir = Path(saved_models) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = model_dir / f".tmp-{uuid.uuid4().hex}"
    try:
        write_savedmodel(task, model, staging, top_k=config.export.top_k)
        _write_extra(staging, run_dir, name)
        questions = _sample_questions(run_dir, parity_questions)
        check_parity(staging, task.predict(model, questions, config.export.top_k), questions)
        version_dir = _publish(staging, model_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    log.info("exported %s -> %s", run_dir, version_dir)
    return version_dir


def write_savedmodel(task: Any, model: keras.Model, path: Path, *, top_k: int) -> None:
    """Writes the task's serving function as a SavedModel at `path`."""
    serve, trackables = task.serving_function(model, top_k)
    archive = keras.export.ExportArchive()
    for item in trackables:
        archive.track(item)
    archive.add_endpoint(
        SIGNATURE, serve, input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)]
    )
    archive.write_out(str(path), verbose=False)


def _write_extra(staging: Path, run_dir: Path, name: str) -> None:
    extra = staging / "assets.extra"
    extra.mkdir(parents=True, exist_ok=True)
    shutil.copy2(run_dir / "config.yaml", extra / "config.yaml")
    run_manifest = {}
    if (run_dir / "manifest.json").is_file():
        import json

        run_manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
    write_json(
        extra / "manifest.json",
        build_manifest(name=name, run_dir=str(run_dir.resolve()), run=run_manifest),
    )


def _sample_questions(run_dir: Path, count: int) -> list[str]:
    questions: list[str] = []
    for split in ("validation", "test", "train"):
        path = run_dir / "data" / f"{split}.jsonl"
        if path.is_file() and path.stat().st_size:
            questions += pd.read_json(path, lines=True, dtype=False)["question"].astype(str).tolist()
        if len(questions) >= count:
            break
    # Hostile-but-valid inputs belong in every parity check.
    return [*questions[:count], "", "   ", "?"]


def check_parity(export_dir: Path, expected: dict[str, np.ndarray], questions: list[str]) -> None:
    """Reloads `export_dir` and compares its answers with the in-process ones.

    Answers must be identical and scores equal within `SCORE_TOLERANCE`.

    Raises:
        UserError: the export disagrees with the model it came from.
    """
    loaded = load_signature(export_dir)
    got = {k: v.numpy() for k, v in loaded(**{INPUT_NAME: tf.constant(questions)}).items()}
    for key, want in expected.items():
        have = got.get(key)
        if have is None:
            raise UserError(f"export check failed: the SavedModel has no output '{key}'")
        if want.dtype.kind in "OSU":
            if not np.array_equal(have, want):
                bad = int(np.argmax(np.any(np.atleast_2d(have != want).reshape(len(questions), -1), axis=1)))
                raise UserError(
                    f"export check failed: output '{key}' differs for question {questions[bad]!r}"
                )
        elif not np.allclose(have, want, atol=SCORE_TOLERANCE, rtol=0):
            diff = float(np.max(np.abs(have - want)))
            raise UserError(
                f"export check failed: output '{key}' differs by {diff:.2e} (tolerance {SCORE_TOLERANCE})"
            )


def load_signature(export_dir: str | Path) -> Any:
    """The `serving_default` function of a SavedModel, with tensorflow-text ops registered."""
    with contextlib.suppress(ImportError):
        import tensorflow_text  # noqa: F401  (registers ops such as NormalizeUTF8)
    return tf.saved_model.load(str(export_dir)).signatures[SIGNATURE]


def _publish(staging: Path, model_dir: Path) -> Path:
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
        return version_dir
    raise UserError(f"could not find a free version number under '{model_dir}'")
