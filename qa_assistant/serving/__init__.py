"""Exports in TF Serving's layout, indexing new answers into them, and answering from them.

`Assistant` (and `qa-assistant ask`) needs TensorFlow alone; `export_run` needs the
tasks and Keras, so it is imported on first use (start-up time of `ask`).
"""

from __future__ import annotations

import importlib
from typing import Any

from qa_assistant.layout import resolve_export, validate_name
from qa_assistant.serving.assistant import Answer, Assistant


def __getattr__(name: str) -> Any:
    if name == "export_run":
        return importlib.import_module("qa_assistant.serving.export").export_run
    raise AttributeError(f"module 'qa_assistant.serving' has no attribute {name!r}")


__all__ = ["Answer", "Assistant", "export_run", "resolve_export", "validate_name"]
