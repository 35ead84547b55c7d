"""What `--init-from` points at: a run directory, an export, or a keras-hub preset.

`open_init_source` reads, without executing anything from it:

* a **run directory** (finished: `model.keras`, `config.yaml`,
  `metrics.json`): the model file is checked by `check_keras_file` first (a
  `Lambda` or other code-carrying layer is refused before anything is built),
  then loaded with `load_keras_model`; its weights are kept as arrays, the
  model is dropped. Also its tokenizer (`preprocessor/`) and class labels;
* an **export** (`saved_models/NAME` = newest version, or a version
  directory): the variables are read from the SavedModel's checkpoint by
  parsing its protocol buffers, never by loading its graph, so none of its
  functions or initialisers run. The tokenizer and labels come from
  `assets.extra/` (written by `qa-assistant export`);
* a **preset** (`package:NAME`, a Keras preset or Hugging Face checkpoint
  directory, a keras-hub handle): the backbone is what it holds, so it starts
  the encoder of a `pretrained` config. A Keras preset's `config.json` is
  scanned for code-carrying layers first.

Example:

>>> source = open_init_source("runs/base")  # doctest: +SKIP
>>> source.kind, len(source.weights), source.tokenizer.vocabulary_size  # doctest: +SKIP
('run', 6, 1532)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qa_assistant.config import Config, load_config
from qa_assistant.errors import UserError
from qa_assistant.layout import (
    ADAPTER_FILE,
    CONFIG_FILE,
    EXTRA_DIR,
    LABELS_FILE,
    MODEL_FILE,
    PREPROCESSOR_DIR,
    SAVED_MODEL_FILE,
    export_versions,
    has_trained_model,
    is_export,
    is_finished,
    resolve_export,
)
from qa_assistant.models.loading import check_keras_config, check_keras_file, load_keras_model
from qa_assistant.presets import PACKAGE_PREFIX, resolve_preset
from qa_assistant.text.base import TOKENIZER_FILE
from qa_assistant.text.tokenizer_factory import Tokenizer, load_tokenizer

log = logging.getLogger(__name__)

RUN, EXPORT, PRESET = "run", "export", "preset"
_HANDLE_PREFIXES = ("kaggle://", "hf://", "modelscope://", "gs://")


@dataclass
class InitSource:
    """A model to start from.

    Attributes:
        spec: what the user gave.
        kind: `run`, `export` or `preset`.
        path: the run directory, export version directory or resolved
            preset (`None` for an online handle).
        weights: `(variable path, value)` in the model's order (empty for a
            preset: its weights are loaded by keras-hub with the backbone).
        tokenizer: the base model's tokenizer (`None` for a preset).
        labels: the base classifier's classes in id order, or `None`.
        config_file: the base run's `config.yaml`, or `None`.
    """

    spec: str
    kind: str
    path: Path | None
    weights: list[tuple[str, np.ndarray]] = field(default_factory=list)
    tokenizer: Tokenizer | None = None
    labels: list[str] | None = None
    config_file: Path | None = None


def source_kind(spec: str) -> tuple[str, Path | None]:
    """`(kind, path)` of an `--init-from` value, from the files it holds.

    Raises:
        UserError: a path that is none of the three.
    """
    if spec.startswith((PACKAGE_PREFIX, *_HANDLE_PREFIXES)):
        return PRESET, None
    path = Path(spec).expanduser()
    if not path.exists():
        raise UserError(
            f"--init-from '{spec}' does not exist; expected a run directory, an export "
            "(saved_models/NAME[/VERSION]) or a keras-hub preset (package:NAME, a preset directory)"
        )
    if path.is_dir() and has_trained_model(path):
        return RUN, path
    if path.is_dir() and (is_export(path) or export_versions(path)):
        return EXPORT, path
    if path.is_dir() and (path / "config.json").is_file():
        return PRESET, path
    raise UserError(
        f"--init-from '{spec}' is not a run directory (model.keras + config.yaml), an export "
        "(saved_model.pb) or a preset directory (config.json)"
    )


def config_for_init(config_files: list[str], overrides: list[str], init_from: str) -> Config:
    """The config of a run that starts from `init_from`.

    Without config files, a run or export source gives its own config (the
    base's architecture, tokenizer settings and training settings), with its
    test file dropped (the user's data replaces the base's). A preset makes
    the encoder `pretrained` with that preset. `overrides` apply last.

    Raises:
        UserError: `init_from` is not a run, export or preset; a bad config.
    """
    kind, path = source_kind(init_from)
    files: list[str | Path] = list(config_files)
    extra: list[str] = []
    if not files and kind != PRESET:
        assert path is not None
        files = [path / CONFIG_FILE if kind == RUN else resolve_export(path) / EXTRA_DIR / CONFIG_FILE]
        extra.append("data.test=null")
    if kind == PRESET:
        extra += ["encoder.type=pretrained", f"encoder.preset={json.dumps(init_from)}"]
    return load_config(files, [*extra, f"init.source={json.dumps(init_from)}", *overrides])


def open_source(config: Config) -> InitSource | None:
    """Opens `init.source` (checks it before the run writes anything); `None` when training from scratch."""
    if not config.init.source:
        return None
    source = open_init_source(config.init.source)
    log.info("starting from %s %s", source.kind, source.spec)
    return source


def open_init_source(spec: str) -> InitSource:
    """Reads a model to start from (see the module docstring).

    Raises:
        UserError: a missing, unfinished, damaged or unsafe source.
    """
    kind, path = source_kind(spec)
    if kind == RUN:
        return _open_run(spec, path)
    if kind == EXPORT:
        return _open_export(spec, path)
    return _open_preset(spec)


def _open_run(spec: str, run_dir: Path) -> InitSource:
    model_file = run_dir / MODEL_FILE
    adapters = not model_file.is_file() and (run_dir / ADAPTER_FILE).is_file()
    if not adapters:
        check_keras_file(model_file)  # before anything else: an unsafe file fails with nothing done
    if not is_finished(run_dir):
        raise UserError(
            f"--init-from '{spec}' is an unfinished run (no metrics.json); finish it first "
            "(rerun its train command)"
        )
    if adapters:
        # A language model's LoRA adapters: its task loads them (`Task.initialize_weights`).
        return InitSource(spec, RUN, run_dir, config_file=run_dir / CONFIG_FILE)
    model = load_keras_model(model_file)
    weights = [(v.path, np.asarray(v.numpy())) for v in model.weights]
    del model
    return InitSource(
        spec,
        RUN,
        run_dir,
        weights=weights,
        tokenizer=_tokenizer(run_dir / PREPROCESSOR_DIR, spec),
        labels=_labels(run_dir / LABELS_FILE),
        config_file=run_dir / CONFIG_FILE,
    )


def _open_export(spec: str, path: Path) -> InitSource:
    version = resolve_export(path)
    extra = version / EXTRA_DIR
    if not (extra / PREPROCESSOR_DIR / TOKENIZER_FILE).is_file():
        raise UserError(
            f"export '{version}' has no {EXTRA_DIR}/preprocessor (exported by an older version); "
            "start from its run directory instead, or export it again"
        )
    return InitSource(
        spec,
        EXPORT,
        version,
        weights=savedmodel_weights(version),
        tokenizer=_tokenizer(extra / PREPROCESSOR_DIR, spec),
        labels=_labels(extra / LABELS_FILE),
        config_file=extra / CONFIG_FILE if (extra / CONFIG_FILE).is_file() else None,
    )


def _open_preset(spec: str) -> InitSource:
    resolved = resolve_preset(spec)
    path = Path(resolved) if Path(resolved).is_dir() else None
    if path is not None:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        check_keras_config(config, f"preset '{spec}'")
    return InitSource(spec, PRESET, path)


def _tokenizer(directory: Path, spec: str) -> Tokenizer:
    if not (directory / TOKENIZER_FILE).is_file():
        raise UserError(f"--init-from '{spec}' has no tokenizer ({directory}/{TOKENIZER_FILE})")
    return load_tokenizer(directory)


def _labels(path: Path) -> list[str] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def savedmodel_weights(export_dir: Path) -> list[tuple[str, np.ndarray]]:
    """`(name, value)` of a SavedModel's floating-point variables, read from its checkpoint alone.

    The object graph in `saved_model.pb` names the variables; the checkpoint
    under `variables/` holds their values. Neither is executed. Keras'
    `ExportArchive` tracks the model's variables as `variables/<i>`, in the
    model's order; random-generator states are left out.

    Raises:
        UserError: the files are damaged.
    """
    import tensorflow as tf  # deferred: start-up time
    from tensorflow.core.protobuf import (
        saved_model_pb2,
        trackable_object_graph_pb2,
    )  # deferred: start-up time

    try:
        saved = saved_model_pb2.SavedModel()
        saved.ParseFromString((export_dir / SAVED_MODEL_FILE).read_bytes())
        reader = tf.train.load_checkpoint(str(export_dir / "variables" / "variables"))
        graph = trackable_object_graph_pb2.TrackableObjectGraph()
        graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (OSError, ValueError, tf.errors.OpError) as error:
        raise UserError(f"export '{export_dir}' could not be read: {str(error).splitlines()[0]}") from None
    nodes = saved.meta_graphs[0].object_graph_def.nodes
    found: list[tuple[int, str, np.ndarray]] = []
    for index, node in enumerate(nodes):
        if node.WhichOneof("kind") != "variable" or "seed_generator" in node.variable.name:
            continue
        keys = [a.checkpoint_key for a in graph.nodes[index].attributes if a.name == "VARIABLE_VALUE"]
        if not keys or not keys[0].startswith("variables/"):
            continue  # `_all_variables/...` repeats them; bank and other collections are not weights
        value = np.asarray(reader.get_tensor(keys[0]))
        if value.dtype.kind == "f":
            found.append((int(keys[0].split("/")[1]), node.variable.name.split(":")[0], value))
    return [(name, value) for _, name, value in sorted(found, key=lambda item: item[0])]
