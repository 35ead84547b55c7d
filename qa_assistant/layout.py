"""The files on disk: the run directory and the export, named in one place.

A run directory (`qa-assistant train --output RUN_DIR`)::

    RUN_DIR/
      .qa-assistant-run   written first: a directory this package may resume or --restart
      config.yaml         resolved config
      manifest.json       versions, seed, data hashes, row counts, split, data quality
      data/               the exact train/validation/test splits (JSONL)
      preprocessor/       vocab.txt + tokenizer.json
      labels.json         (classification) class id -> answer text
      answers.json, known_questions.jsonl, retrieval.json
                          (retrieval) the answer bank, the data's known questions, the fallback threshold
      answer_preprocessor/  (generation) the answer tokenizer
      init.json           with --init-from: what was loaded, remapped, new, skipped
      model.keras         trained model, best validation epoch (a LoRA language model:
                          adapter.lora.h5 instead, and lm.json)
      checkpoints/        best weights and the resume state, while training (training/resume.py)
      logs/               TensorBoard: HParams session; train/, validation/, projector/
      predictions.jsonl   one line per distinct test question, with all its references
      metrics.json        test metrics; written last, marks the run finished

An export (`qa-assistant export --name NAME`), TF Serving's layout::

    saved_models/NAME/VERSION/
      saved_model.pb, variables/    the SavedModel (`serving_default` takes raw text)
      assets.extra/                 config.yaml, preprocessor/, labels.json, retrieval.json,
                                    manifest.json, tf_serving_warmup_requests

Every module that reads or writes these paths takes the names from here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from qa_assistant.errors import UserError

# The run directory.
RUN_MARKER = ".qa-assistant-run"
CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"
DATA_DIR = "data"
PREPROCESSOR_DIR = "preprocessor"
LABELS_FILE = "labels.json"
ANSWER_PREPROCESSOR_DIR = "answer_preprocessor"  # `task.type: generate`: the answer tokenizer
ANSWERS_FILE = "answers.json"  # `task.type: retrieve`: the answer bank, in the order of its ids
KNOWN_QUESTIONS_FILE = "known_questions.jsonl"  # `task.type: retrieve`: every (question, answer) of the data
RETRIEVAL_FILE = "retrieval.json"  # `task.type: retrieve`: the fallback threshold and its calibration
INIT_REPORT = "init.json"
MODEL_FILE = "model.keras"
ADAPTER_FILE = "adapter.lora.h5"  # `task.type: lm` with LoRA: the adapters instead of the whole model
LM_FILE = "lm.json"  # `task.type: lm`: the base model, the quoting and declining thresholds
CHECKPOINTS_DIR = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"
LOGS_DIR = "logs"
PREDICTIONS_FILE = "predictions.jsonl"
METRICS_FILE = "metrics.json"
# Where models unpacked or converted from packages and files are kept (`cache_root`).
CACHE_ENV = "QA_ASSISTANT_CACHE"

# The export.
SAVED_MODEL_FILE = "saved_model.pb"
EXTRA_DIR = "assets.extra"
INDEX_FILE = (
    "index.json"  # in EXTRA_DIR of a version `qa-assistant index` made: what it added, from which files
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def split_file(run_dir: Path, split: str) -> Path:
    """`RUN_DIR/data/<split>.jsonl`: the rows of the run's `train`, `validation` or `test` split."""
    return Path(run_dir) / DATA_DIR / f"{split}.jsonl"


def is_finished(run_dir: Path) -> bool:
    """True when `run_dir` holds a completed run (its `metrics.json` is written last)."""
    return (Path(run_dir) / METRICS_FILE).is_file()


def is_run_dir(path: Path) -> bool:
    """An empty directory, or one this package made (a marker, or a config and a manifest)."""
    names = {p.name for p in path.iterdir()}
    return not names or RUN_MARKER in names or {CONFIG_FILE, MANIFEST_FILE} <= names


def has_trained_model(path: Path) -> bool:
    """A run directory with a model (or a language model's adapters) and its config (finished or not)."""
    model = (path / MODEL_FILE).is_file() or (path / ADAPTER_FILE).is_file()
    return model and (path / CONFIG_FILE).is_file()


def validate_name(name: str) -> str:
    """A model name is one path component: letters, digits, `.`, `_`, `-`; not `..`."""
    if not _NAME.match(name) or ".." in name:
        raise UserError(
            f"model name {name!r} is not allowed; expected 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no path separators)"
        )
    return name


def model_directory(saved_models: str | Path, name: str) -> Path:
    """`saved_models/NAME` for a valid `name`; refuses one that leads outside `saved_models` (a symlink).

    Raises:
        UserError: a bad name, or `saved_models/NAME` resolving elsewhere.
    """
    root = Path(saved_models)
    model_dir = root / validate_name(name)
    if model_dir.is_symlink() or (model_dir.exists() and model_dir.resolve().parent != root.resolve()):
        raise UserError(
            f"'{model_dir}' leads outside '{root}' (a symbolic link?); expected a plain directory there"
        )
    return model_dir


def version_numbers(model_dir: Path) -> list[int]:
    """Existing integer versions under `saved_models/NAME/`, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit() and p.is_dir())


def is_export(path: Path) -> bool:
    """`path` is a SavedModel directory (one version)."""
    return (path / SAVED_MODEL_FILE).is_file()


def export_versions(path: Path) -> list[int]:
    """The versions under `saved_models/NAME/` that hold a SavedModel, ascending."""
    return [n for n in version_numbers(path) if is_export(path / str(n))]


def check_finished_run(run_dir: str | Path) -> Path:
    """`run_dir` as a `Path` when it holds a finished run.

    Raises:
        UserError: it is not a run directory with a trained model, or the run is unfinished.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file" if run_dir.exists() else "does not exist"
        raise UserError(
            f"'{run_dir}' {what}; expected a finished run directory (qa-assistant train --output)"
        )
    if not has_trained_model(run_dir):
        raise UserError(
            f"'{run_dir}' is not a finished run directory (expected {MODEL_FILE}, or a language model's "
            f"{ADAPTER_FILE}, and {CONFIG_FILE})"
        )
    if not is_finished(run_dir):
        raise UserError(
            f"'{run_dir}' is an unfinished run (no {METRICS_FILE}); rerun its train command to finish it"
        )
    return run_dir


def check_grounding(grounding: str) -> None:
    """`lm.grounding` is `none`, `tfidf` or a directory holding a trained run (its task is checked when it loads).

    Raises:
        UserError: anything else, e.g. a misspelled `tfidf` or a run directory that is not there.
    """
    if grounding in ("none", "tfidf") or has_trained_model(Path(grounding)):
        return
    what = "holds no trained run" if Path(grounding).is_dir() else "is not a directory"
    raise UserError(f"lm.grounding '{grounding}' {what}; expected none, tfidf or a retrieval run directory")


def resolve_export(path: str | Path) -> Path:
    """A SavedModel directory: `path` itself, or the newest integer version inside it.

    Raises:
        UserError: `path` holds no SavedModel.
    """
    path = Path(path)
    if is_export(path):
        return path
    numbers = export_versions(path)
    if numbers:
        return path / str(numbers[-1])
    raise UserError(
        f"'{path}' is not an exported model; expected saved_models/NAME or saved_models/NAME/VERSION "
        "(create one with: qa-assistant export --run RUN_DIR --name NAME)"
    )


def cache_root() -> Path:
    """`$QA_ASSISTANT_CACHE`, else `$XDG_CACHE_HOME/qa_assistant`, else `~/.cache/qa_assistant`."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "qa_assistant"
