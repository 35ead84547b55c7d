"""Personalisation: start a run from a base model, and what a run writes for TensorBoard besides scalars.

`qa-assistant train --init-from X` (config key `init.source`) starts the new
model from X, a run directory, an export or a keras-hub preset
(`training/init_source.py`):

1. before anything is written, X is opened and checked (`open_source`);
2. the task's tokenizer keeps X's vocabulary: a word vocabulary gets the
   user's new words appended (`init.max_new_words`), base words keep their
   ids (`tasks/base.py`, `text/tokenizer_factory.py`);
3. after the model is built, X's weights are copied wherever names and
   shapes agree (`models/transfer.py`); the token embedding's rows follow
   the vocabulary, the class head's columns follow the answers (answers the
   two share keep their rows, new ones start fresh), new words start from
   word vectors or the mean row (`embeddings/extension.py`). The log and
   `RUN_DIR/init.json` say what was loaded, remapped, newly initialised
   and skipped;
4. `encoder.freeze`, `train.head_learning_rate`, `train.warmup_epochs` and
   `train.schedule` then shape the fine-tuning.

With `--init-from` and no `--config`, the run takes X's own config (its
architecture) with the user's data (`config_for_init`).

Example:

>>> config = config_for_init([], ["data.train=mine.csv"], "runs/base")  # doctest: +SKIP
>>> train_run(config, "runs/me")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np
import tensorflow as tf

from qa_assistant.config import Config, load_config
from qa_assistant.manifest import write_json
from qa_assistant.models.transfer import Remap, TransferReport, index_map, transfer_weights
from qa_assistant.training.init_source import PRESET, InitSource, open_init_source, source_kind

if TYPE_CHECKING:
    from qa_assistant.tasks.base import Task

log = logging.getLogger(__name__)

INIT_REPORT = "init.json"
EMBEDDING_SUFFIX = "token_embedding/embeddings"


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
        files = [_base_config_file(kind, path)]
        extra.append("data.test=null")
    if kind == PRESET:
        extra += ["encoder.type=pretrained", f"encoder.preset={json.dumps(init_from)}"]
    return load_config(files, [*extra, f"init.source={json.dumps(init_from)}", *overrides])


def _base_config_file(kind: str, path: Path | None) -> Path:
    from qa_assistant.serving.assistant import resolve_export

    assert path is not None
    return path / "config.yaml" if kind == "run" else resolve_export(path) / "assets.extra" / "config.yaml"


def open_source(config: Config) -> InitSource | None:
    """Opens `init.source` (checks it before the run writes anything); `None` when training from scratch."""
    if not config.init.source:
        return None
    source = open_init_source(config.init.source)
    log.info("starting from %s %s", source.kind, source.spec)
    return source


def initialize(task: Task, model: keras.Model, run_dir: Path | None = None) -> TransferReport | None:
    """Copies the base model's weights into the freshly built `model`; logs and writes the report.

    Call inside the strategy scope, before `compile`.
    """
    source = task.init_source
    if source is None:
        return None
    if source.kind == PRESET:
        report = _from_preset(task, model, source)
    else:
        report = transfer_weights(model, source.weights, task.weight_remaps(model))
    report.log(source.spec)
    if not report.loaded and not report.remapped:
        log.warning("init from %s loaded no weights: its layers do not match this config's", source.spec)
    if run_dir is not None:
        write_json(run_dir / INIT_REPORT, {"source": source.spec, "kind": source.kind, **report.as_dict()})
    return report


def _from_preset(task: Task, model: keras.Model, source: InitSource) -> TransferReport:
    """A preset is the backbone: built from it already, or (another preset configured) copied in."""
    from qa_assistant.models.presets import load_backbone, resolve_preset

    configured = task.config.encoder.preset
    if configured and resolve_preset(configured) == resolve_preset(source.spec):
        inside = {id(v) for layer in _backbones(model) for v in layer.weights}
        report = TransferReport()
        for variable in model.weights:
            (report.loaded if id(variable) in inside else report.new).append(variable.path)
        return report
    backbone = load_backbone(source.spec)
    return transfer_weights(model, [(v.path, np.asarray(v.numpy())) for v in backbone.weights])


def _backbones(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    import keras_hub

    found = []
    for child in getattr(layer, "layers", []):
        if isinstance(child, keras_hub.models.Backbone):
            found.append(child)
        elif isinstance(child, keras.Model):
            found += _backbones(child)
    return found


def embedding_remaps(task: Task, model: keras.Model) -> dict[str, Remap]:
    """Token-embedding remaps when the base and this run have word-level vocabularies."""
    source = task.init_source
    base = source.tokenizer if source is not None else None
    if base is None or task.tokenizer is None or base.KIND != "word" or task.tokenizer.KIND != "word":
        return {}
    vocabulary = task.tokenizer.vocabulary
    index = index_map(vocabulary, base.vocabulary)
    base_rows = dict(source.weights)
    remaps = {}
    for variable in model.weights:
        name = variable.path
        if (
            name.endswith(EMBEDDING_SUFFIX)
            and name in base_rows
            and len(base_rows[name]) == len(base.vocabulary)
        ):
            from qa_assistant.embeddings.extension import new_row_fill

            fill = new_row_fill(
                base_rows[name],
                vocabulary,
                vectors_file=task.config.embedding.pretrained,
                noise=task.config.init.new_word_noise,
                seed=task.config.train.seed,
            )
            remaps[name] = Remap(axis=0, index=index, what="words", fill=fill)
    return remaps


def word_embedding(task: Task, model: keras.Model) -> tuple[np.ndarray, list[str]] | None:
    """The token embedding of `model` and its words (first embedding whose rows match the vocabulary)."""
    if task.tokenizer is None:
        return None
    vocabulary = task.tokenizer.vocabulary
    for variable in model.weights:
        if variable.path.endswith(EMBEDDING_SUFFIX) and variable.shape[0] == len(vocabulary):
            labels = ["(padding)" if i == 0 else word for i, word in enumerate(vocabulary)]
            return np.asarray(variable.numpy()), labels
    return None


def write_extras(task: Task, model: keras.Model, log_dir: Path) -> None:
    """After training: projector embeddings, and the augmented examples as TensorBoard text."""
    from qa_assistant.embeddings.projector import write_projector

    write_projector(log_dir, task.projector_embeddings(model))
    augmentation = task.augmentation
    if augmentation is not None and augmentation.samples:
        rows = [["operation", "original", "augmented"], *[list(s) for s in augmentation.samples]]
        writer = tf.summary.create_file_writer(str(log_dir / "train"))
        with writer.as_default():
            tf.summary.text("augmented_examples", tf.constant(rows), step=0)
            counts = json.dumps(augmentation.counts)
            tf.summary.text("augmentation_counts", tf.constant(counts), step=0)
        writer.close()


def transfer_summary(run_dir: Path) -> dict[str, Any] | None:
    """The `init.json` of a run, or `None` (trained from scratch)."""
    path = Path(run_dir) / INIT_REPORT
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
