"""Reading a finished run back: its config, its restored task and its trained model."""

from __future__ import annotations

from pathlib import Path

import keras

from qa_assistant.config import Config, load_config
from qa_assistant.layout import CONFIG_FILE, check_finished_run
from qa_assistant.tasks import get_task
from qa_assistant.tasks.base import Task


def load_run(run_dir: str | Path) -> tuple[Config, Task, keras.Model]:
    """Reads a finished run: its config, restored task and trained model.

    The model goes through `load_keras_model` (safe mode): a model file that
    would need to execute code (a `Lambda` layer) is refused.

    Raises:
        UserError: the directory is not a finished run, or its model is unsafe.
    """
    run_dir = check_finished_run(run_dir)
    config = load_config([run_dir / CONFIG_FILE])
    task = get_task(config)
    task.restore(run_dir)
    return config, task, task.read_model(run_dir)
