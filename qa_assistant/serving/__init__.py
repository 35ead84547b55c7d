"""Exports in TF Serving's layout, indexing new answers into them, and answering from them."""

from qa_assistant.layout import resolve_export, validate_name
from qa_assistant.serving.assistant import Answer, Assistant
from qa_assistant.serving.export import export_run

__all__ = ["Answer", "Assistant", "export_run", "resolve_export", "validate_name"]
