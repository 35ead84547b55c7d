"""The one place the project loads Keras model files, and it never runs code from them.

A `.keras` file is a zip archive: `config.json` (the architecture, turned back
into Python objects on load), `model.weights.h5` and `metadata.json`. Some
layers make loading run something the file supplies: a `Lambda` layer or a
serialised lambda carries Python bytecode; `TFSMLayer` loads a TensorFlow graph
from any path named in the file; `TorchModuleWrapper` unpickles; `JaxLayer` /
`FlaxLayer` wrap arbitrary functions. `load_keras_model` reads `config.json`
first and refuses those with a `UserError` naming the layer, then loads with
Keras' `safe_mode=True` as a second guard. Legacy HDF5 models (`.h5`), pickles
and SavedModel directories are refused: only the `.keras` format is read.

Use it for every model file that comes from outside the current process —
a finished run (`tasks/runs.py`) or a model to start from
(`--init-from`).

Example:

>>> model = load_keras_model("runs/mine/model.keras")  # doctest: +SKIP
>>> check_keras_file("downloaded.keras")  # doctest: +SKIP
Traceback (most recent call last):
qa_assistant.errors.UserError: model file 'downloaded.keras' contains a Lambda layer ('lambda') ...
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from qa_assistant import mpnet  # noqa: F401  registers MPNet's layers: a saved run that holds one loads
from qa_assistant.errors import UserError

# Layer classes whose deserialisation executes or loads something the file supplies.
UNSAFE_CLASSES = {
    "Lambda": "runs Python code stored in the file",
    "__lambda__": "is Python bytecode stored in the file",
    "TFSMLayer": "loads a TensorFlow graph from a path named in the file",
    "TorchModuleWrapper": "unpickles a PyTorch module stored in the file",
    "JaxLayer": "calls a function stored in the file",
    "FlaxLayer": "calls a module stored in the file",
}
_CONFIG = "config.json"
_MAX_CONFIG_BYTES = 64 * 1024 * 1024  # a config this large is not an architecture


def load_keras_model(
    path: str | Path, *, custom_objects: dict[str, Any] | None = None, compile: bool = False
) -> keras.Model:
    """Loads a `.keras` model file that needs no code from the file to rebuild.

    Args:
        path: a `.keras` file.
        custom_objects: extra classes by registered name (classes decorated
            with `keras.saving.register_keras_serializable`, such as the
            project's layers, are found without this).
        compile: also restore the optimizer/loss settings saved with it.

    Returns:
        The model, with its trained weights.

    Raises:
        UserError: not a `.keras` file, unreadable, or it would run code
            (the message names the layer and why).
    """
    path = Path(path)
    check_keras_file(path)
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=compile, safe_mode=True)
    except (ValueError, TypeError, KeyError, OSError) as error:
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"model file '{path}' could not be loaded safely: {detail[:300]}") from None


def check_keras_file(path: str | Path) -> dict[str, Any]:
    """Validates a `.keras` file without building anything from it.

    Returns:
        Its parsed `config.json`.

    Raises:
        UserError: wrong format, or a layer that would run code on load.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(
            f"'{path}' is a directory (a SavedModel?); expected a .keras model file "
            "(SavedModels are for serving and are not loaded back for training)"
        )
    if not path.is_file():
        raise UserError(f"model file '{path}' does not exist; expected a .keras file")
    if path.suffix.lower() in (".h5", ".hdf5"):
        raise UserError(
            f"model file '{path}' is a legacy HDF5 model; expected a .keras file "
            "(legacy files can carry Python code; re-save the model with model.save('name.keras'))"
        )
    if path.suffix.lower() != ".keras" or not zipfile.is_zipfile(path):
        raise UserError(f"'{path}' is not a .keras model file (a zip archive with config.json)")
    config = _read_config(path)
    check_keras_config(config, f"model file '{path}'")
    return config


def check_keras_config(config: Any, source: str) -> None:
    """Refuses a serialised Keras config (a model's `config.json`, a preset's) naming a layer that runs code.

    Args:
        config: the parsed JSON.
        source: how the message names where it came from.

    Raises:
        UserError: naming the layer and why it is refused.
    """
    for class_name, name in _classes(config):
        if class_name in UNSAFE_CLASSES:
            kind = "a serialised Python lambda" if class_name == "__lambda__" else f"a {class_name} layer"
            raise UserError(
                f"{source} contains {kind} ('{name}'), which {UNSAFE_CLASSES[class_name]}; "
                "refusing to load it (expected a model built only from standard or registered layers)"
            )


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(_CONFIG)
            if info.file_size > _MAX_CONFIG_BYTES:
                raise UserError(f"model file '{path}' has a {info.file_size:,}-byte config; refusing it")
            config = json.loads(archive.read(info).decode("utf-8"))
    except KeyError:
        raise UserError(f"'{path}' is not a .keras model file: it has no {_CONFIG}") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError, RecursionError, OSError) as error:
        raise UserError(f"model file '{path}' is damaged ({error})") from None
    if not isinstance(config, dict):
        raise UserError(f"model file '{path}' has a {_CONFIG} that is not an object")
    return config


def _classes(node: Any) -> Iterator[tuple[str, str]]:
    """Every `(class_name, name)` in a serialised Keras config, nested objects included."""
    if isinstance(node, dict):
        class_name = node.get("class_name")
        if isinstance(class_name, str):
            inner = node.get("config")
            name = inner.get("name", "?") if isinstance(inner, dict) else str(inner)[:40]
            yield class_name, str(name)
        for value in node.values():
            yield from _classes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _classes(value)
