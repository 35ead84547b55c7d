"""The exported SavedModel's interface, and loading it with TensorFlow alone.

`serving_default` takes `question` (`tf.string`, shape `[None]`): raw text.
Importing this module pulls in TensorFlow only (no Keras model code), which
keeps `qa-assistant ask` and the `Assistant` quick to start.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import tensorflow as tf

SIGNATURE = "serving_default"
INPUT_NAME = "question"


def load_saved_model(export_dir: str | Path) -> Any:
    """The loaded SavedModel (all its signatures), with tensorflow-text ops registered."""
    with contextlib.suppress(ImportError):
        import tensorflow_text  # noqa: F401  (registers ops such as NormalizeUTF8)
    return tf.saved_model.load(str(export_dir))


def load_signature(export_dir: str | Path) -> Any:
    """The `serving_default` function of a SavedModel, with tensorflow-text ops registered."""
    return load_saved_model(export_dir).signatures[SIGNATURE]


def variable_texts(variable: Any) -> list[str]:
    """A SavedModel's string variable (a retrieval bank's answers or known questions) as Python strings."""
    return [v.decode("utf-8") for v in variable.numpy()]
