"""qa_assistant: turn your own question/answer data into a personal QA assistant.

Public API (heavy modules are imported lazily, so `import qa_assistant` is cheap):

    load_config, Config            typed run configuration
    load_qa_data                   files / builtin:chatterbot / tfds -> cleaned splits
    train_run, load_run            a training run, start to finish
    export_run, Assistant          SavedModel export and answering from it
    evaluate_path                  metrics of a run or an export on a file
    UserError                      bad input, reported as one clear line
"""

from __future__ import annotations

import importlib
from typing import Any

from qa_assistant.config import Config, load_config
from qa_assistant.errors import UserError

__version__ = "0.1.0"

_LAZY = {
    "load_qa_data": "qa_assistant.data",
    "train_run": "qa_assistant.training.runner",
    "load_run": "qa_assistant.tasks.runs",
    "export_run": "qa_assistant.serving",
    "Assistant": "qa_assistant.serving",
    "evaluate_path": "qa_assistant.serving.evaluate",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'qa_assistant' has no attribute {name!r}")


__all__ = ["Config", "UserError", "load_config", *_LAZY]
