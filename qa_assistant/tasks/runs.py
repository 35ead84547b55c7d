"""Reading a finished run back: its config, its restored task and its trained model."""

from __future__ import annotations

from pathlib import Path

import keras

from qa_assistant.config import Config, load_config
from qa_assistant.errors import UserError
from qa_assistant.layout import CONFIG_FILE, METRICS_FILE, MODEL_FILE, has_trained_model, is_finished
from qa_assistant.tasks import get_task
from qa_assistant.tasks.base import Task


def load_run(run_dir: str | Path) -> tuple[Config, Task, keras.Model]:
    """Reads a finished run: its config, restored task and trained model.

    The model goes through `load_keras_model` (safe mode): a model file that
    would need to execute code (a `Lambda` layer) is refused.

    Raises:
        UserError: the directory is not a finished run, or its model is unsafe.
    """
    run_dir = Path(run_dir)
    if not has_trained_model(run_dir):
        raise UserError(f"'{run_dir}' is not a finished run directory (no {MODEL_FILE} / {CONFIG_FILE})")
    if not is_finished(run_dir):
        raise UserError(
            f"'{run_dir}' is an unfinished run (no {METRICS_FILE}); rerun its train command to finish it"
        )
    config = load_config([run_dir / CONFIG_FILE])
    task = get_task(config)
    task.restore(run_dir)
    return config, task, task.read_model(run_dir)
