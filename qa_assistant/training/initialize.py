"""Personalisation at training time: starting the freshly built model from a base model's weights.

`qa-assistant train --init-from X` (config key `init.source`) starts the new
model from X, a run directory, an export or a keras-hub preset
(`personalization/sources.py`):

1. before anything is written, X is opened and checked (`open_source`);
2. the task's tokenizer keeps X's vocabulary: a word vocabulary gets the
   user's new words appended (`init.max_new_words`), base words keep their
   ids (`tasks/base.py`, `text/tokenizer_factory.py`);
3. after the model is built, X's weights are copied wherever names and
   shapes agree (`initialize`, `personalization/transfer.py`); the token
   embedding's rows follow the vocabulary, the class head's columns follow
   the answers (answers the two share keep their rows, new ones start
   fresh), new words start from word vectors or the mean row
   (`personalization/vocabulary.py`). The log and `RUN_DIR/init.json` say
   what was loaded, remapped, newly initialised and skipped;
4. `encoder.freeze`, `train.head_learning_rate`, `train.warmup_epochs` and
   `train.schedule` then shape the fine-tuning.

With `--init-from` and no `--config`, the run takes X's own config (its
architecture) with the user's data (`personalization.sources.config_for_init`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np

from qa_assistant.layout import INIT_REPORT
from qa_assistant.manifest import write_json
from qa_assistant.personalization.sources import PRESET, InitSource
from qa_assistant.personalization.transfer import TransferReport, transfer_weights
from qa_assistant.presets import load_backbone, resolve_preset
from qa_assistant.tasks import Task

log = logging.getLogger(__name__)


def initialize(task: Task, model: keras.Model, run_dir: Path | None = None) -> TransferReport | None:
    """Copies the base model's weights into the freshly built `model`; logs and writes the report.

    Call inside the strategy scope, before `compile`.
    """
    source = task.init_source
    if source is None:
        return None
    # A task's own way first (a language model's adapters), else weights by name.
    report = task.initialize_weights(model, source)
    if report is None and source.kind == PRESET:
        report = _from_preset(task, model, source)
    elif report is None:
        report = transfer_weights(model, source.weights, task.weight_remaps(model))
    report.log(source.spec)
    if not report.loaded and not report.remapped:
        log.warning("init from %s loaded no weights: its layers do not match this config's", source.spec)
    if run_dir is not None:
        write_json(run_dir / INIT_REPORT, {"source": source.spec, "kind": source.kind, **report.as_dict()})
    return report


def _from_preset(task: Task, model: keras.Model, source: InitSource) -> TransferReport:
    """A preset is the backbone: built from it already, or (another preset configured) copied in."""
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
    import keras_hub  # deferred: start-up time

    found = []
    for child in getattr(layer, "layers", []):
        if isinstance(child, keras_hub.models.Backbone):
            found.append(child)
        elif isinstance(child, keras.Model):
            found += _backbones(child)
    return found
