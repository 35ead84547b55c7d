"""Exports in TF Serving's layout, and answering from them."""

from qa_assistant.serving.assistant import Answer, Assistant, resolve_export
from qa_assistant.serving.export import export_run, validate_name

__all__ = ["Answer", "Assistant", "export_run", "resolve_export", "validate_name"]
