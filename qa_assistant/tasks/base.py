"""What every task (classify, retrieve, generate) provides to the trainer and exporter.

A task owns its preprocessing (tokenizer, label or answer vocabulary), builds
its Keras model (token ids in, numbers out, so it can be XLA-compiled), knows
its loss and metrics, evaluates itself on a held-out split, and writes the
function that the SavedModel serves (raw text in, answer out).
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.atomic import replacing
from qa_assistant.config import Config
from qa_assistant.data.augment import Augmentation, NeighbourSynonyms, augment_questions
from qa_assistant.data.dataset import QAData
from qa_assistant.data.split import Splits
from qa_assistant.embeddings import embedding_from_file
from qa_assistant.embeddings.neighbours import VectorIndex
from qa_assistant.layout import MODEL_FILE
from qa_assistant.models.encoders import build_encoder
from qa_assistant.models.encoders.pretrained import check_token_limit
from qa_assistant.models.loading import load_keras_model
from qa_assistant.personalization.sources import InitSource
from qa_assistant.personalization.transfer import Remap, TransferReport
from qa_assistant.personalization.vocabulary import embedding_remaps, word_embedding
from qa_assistant.tasks.optimization import build_optimizer
from qa_assistant.text.tokenizer_factory import Tokenizer, build_tokenizer

log = logging.getLogger(__name__)


@dataclass
class ServingBundle:
    """Everything an export holds besides the default signature's own function.

    Attributes:
        serve: maps `question` strings `[batch]` to named outputs
            (`serving_default`).
        trackables: layers, models and resources the functions use.
        endpoints: further signatures by name: a function of one `text`
            string tensor `[batch]`, or `(fn, input_specs)` for other inputs;
            each returns named outputs.
        variables: named lists of `tf.Variable`s that a reloaded export
            exposes as attributes (e.g. a retrieval answer bank).
    """

    serve: Callable[..., Any]
    trackables: list[Any]
    endpoints: dict[str, Callable[..., Any] | tuple[Callable[..., Any], list[tf.TensorSpec]]] = field(
        default_factory=dict
    )
    variables: dict[str, list[Any]] = field(default_factory=dict)


class Task(abc.ABC):
    """Base class of the task catalogue.

    Args:
        config: the run's resolved config.
    """

    name: ClassVar[str]
    # Predictions are labels of a small set of classes: TensorBoard draws their confusion matrix.
    confusion_matrix: ClassVar[bool] = False
    # The test metrics that experiment tables show first (all of metrics.json is kept).
    headline_metrics: ClassVar[tuple[str, ...]] = ("accuracy",)

    def __init__(self, config: Config) -> None:
        self.config = config
        self.tokenizer: Tokenizer | None = None
        # Set by the runner before `compile`: a learning-rate schedule counts steps.
        self.steps_per_epoch: int | None = None
        # Set by `dataset` for tasks that count tokens: real tokens in one epoch of training batches.
        self.tokens_per_epoch: int | None = None
        # Set by the runner for `init.source` (personalisation): the model this run starts from.
        self.init_source: InitSource | None = None
        self.augmentation: Augmentation | None = None
        # Set by the runner: phrasing keys of the validation and test questions,
        # which augmentation must not recreate in training.
        self.held_out_questions: frozenset[str] = frozenset()

    # -- preprocessing -------------------------------------------------------

    @abc.abstractmethod
    def prepare(self, data: QAData) -> None:
        """Fits preprocessing (vocabularies) on the training split only."""

    def settings_from_data(self, data: QAData) -> dict[str, Any]:
        """Config values that a config leaves null to be taken from the data: `{"section.key": value}`.

        The runner writes them into the run's config.yaml before training, so
        a resumed run, `load_run` and the export use the same values. None by
        default.
        """
        del data
        return {}

    def build_tokenizer(self, texts: list[str], reserved_tokens: tuple[str, ...] = ()) -> Tokenizer:
        """The run's tokenizer (word, WordPiece or the pretrained preset's) over cleaned training texts.

        When the run starts from a base model, the base vocabulary is kept
        (a word vocabulary extended with the new words of `texts`).
        """
        base = self.init_source.tokenizer if self.init_source is not None else None
        return build_tokenizer(self.config, texts, reserved_tokens, base=base)

    def embedding_matrix(self) -> np.ndarray | None:
        """Initial embedding from `embedding.pretrained`, or `None` for random."""
        path = self.config.embedding.pretrained
        if not path or self.tokenizer is None:
            return None
        return embedding_from_file(
            path, self.tokenizer.vocabulary, self.config.embedding.dim, seed=self.config.train.seed
        )

    def pooled_encoding(self) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """`(token_ids input, pooled output)` of a freshly built encoder of this run's config."""
        encoder = build_encoder(
            self.config.encoder,
            self.tokenizer.vocabulary_size,
            self.config.embedding,
            self.embedding_matrix(),
        )
        check_token_limit(encoder, self.encoded_lengths(), self.config.encoder.preset)
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        return token_ids, encoder(token_ids)["pooled_output"]

    def encoded_lengths(self) -> dict[str, int | None]:
        """Tokens per text that the encoder reads, by the config key that sets them."""
        return {"text.max_length": self.config.text.max_length}

    def training_rows(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The training split with its EDA copies (`augment`; unchanged when off).

        Synonyms are nearest neighbours in `augment.vectors` (or
        `embedding.pretrained`), limited to the vocabulary of a word-level
        tokenizer so that every inserted word has an embedding row.
        """
        augment = self.config.augment
        if not augment.enabled:
            return frame
        synonyms = None
        if augment.needs_vectors:
            index = VectorIndex.from_file(augment.vectors or self.config.embedding.pretrained)
            word_level = self.tokenizer is not None and self.tokenizer.KIND == "word"
            allowed = set(self.tokenizer.vocabulary[2:]) if word_level else None
            synonyms = NeighbourSynonyms(index, augment.neighbours, augment.min_similarity, allowed)
        self.augmentation = augment_questions(
            frame, augment, synonyms=synonyms, seed=self.config.train.seed, held_out=self.held_out_questions
        )
        return self.augmentation.frame

    # -- personalisation -----------------------------------------------------

    def weight_remaps(self, model: keras.Model) -> dict[str, Remap]:
        """Variables whose rows stand for tokens (or answers) of the base model: how they map.

        The token embedding's rows follow the vocabulary (base words keep
        their rows; new words start from word vectors or the mean row).
        Tasks with answer-indexed weights add theirs.
        """
        source = self.init_source
        base = source.tokenizer if source is not None else None
        if base is None or self.tokenizer is None or base.KIND != "word" or self.tokenizer.KIND != "word":
            return {}
        return embedding_remaps(
            model.weights,
            self.tokenizer.vocabulary,
            base.vocabulary,
            source.weights,
            vectors_file=self.config.embedding.pretrained,
            noise=self.config.init.new_word_noise,
            seed=self.config.train.seed,
        )

    def projector_embeddings(self, model: keras.Model) -> dict[str, tuple[np.ndarray, list[str]]]:
        """What the TensorBoard projector shows: name -> (matrix, one label per row).

        The word embedding of a word-level model; tasks add answer embeddings.
        """
        found = word_embedding(model.weights, self.tokenizer.vocabulary) if self.tokenizer else None
        return {"words": found} if found is not None else {}

    # -- training ------------------------------------------------------------

    @property
    def data_needs_model(self) -> bool:
        """Whether the training examples depend on the model as it starts (then `prepare_with_model` first)."""
        return False

    def prepare_with_model(self, model: keras.Model) -> None:
        """Called with the built and initialised model before `dataset`, when `data_needs_model`."""
        del model  # no task but retrieval's model-mined negatives draws data from the model

    @abc.abstractmethod
    def dataset(self, frame: pd.DataFrame, *, training: bool) -> tf.data.Dataset:
        """Batches of `(inputs, targets)` for `fit`."""

    @abc.abstractmethod
    def build_model(self) -> keras.Model:
        """The trainable model (call inside the strategy scope)."""

    @abc.abstractmethod
    def compile(self, model: keras.Model, *, jit_compile: bool) -> None:
        """Optimizer, loss and metrics."""

    def optimizer(self, model: keras.Model) -> keras.optimizers.Optimizer:
        """Adam with the `train` section's schedule and head learning rate (`tasks/optimization.py`)."""
        return build_optimizer(self.config.train, self.steps_per_epoch, model)

    def remember_start(self, model: keras.Model) -> None:
        """Called with the built and initialised model before training starts (and before a resume's restore)."""
        del model  # only retrieval's weight averaging needs the starting weights

    def finalize(self, model: keras.Model, splits: Splits) -> None:
        """Called once after training, before `save`: post-training calibration (none by default)."""
        del model, splits  # nothing to calibrate for most tasks

    # -- evaluation ----------------------------------------------------------

    @abc.abstractmethod
    def evaluate(self, model: keras.Model, frame: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
        """Test metrics (README's keys, `num_questions` among them) and one prediction row per distinct question.

        Every task scores a question asked in several rows once, against all
        its answers (`metrics/ranking.py`).
        """

    def sample_predictions(self, model: keras.Model, frame: pd.DataFrame) -> pd.DataFrame:
        """Predictions for the rows of `frame`, as `evaluate` makes them, for TensorBoard summaries.

        Columns `question`, `reference`, `predicted`, `score` (and `correct`);
        at least one row per distinct question of `frame`. Called after every
        epoch on a few validation questions (`training.tensorboard.PredictionSummaries`);
        classification's confusion matrix counts each row once (one per
        distinct question, `reference` being the class it counts for).
        """
        return self.evaluate(model, frame)[1]

    def epoch_metrics(self, model: keras.Model, frame: pd.DataFrame) -> dict[str, float]:
        """Validation metrics that Keras' own validation pass cannot compute (none by default).

        Called after every epoch on the validation split when `train.monitor`
        names one of them (`training.callbacks.EpochMetrics` logs them as `val_<name>`).
        """
        del model, frame
        return {}

    @abc.abstractmethod
    def baseline(self, splits: Splits) -> dict[str, float]:
        """Metrics of a classical baseline fitted on the same training split."""

    @abc.abstractmethod
    def predict(self, model: keras.Model, questions: list[str], top_k: int) -> dict[str, np.ndarray]:
        """In-process answers for raw questions, shaped like the export's outputs."""

    # -- serving -------------------------------------------------------------

    @abc.abstractmethod
    def serving_function(self, model: keras.Model, top_k: int) -> tuple[Any, list[Any]]:
        """`(fn, trackables)`: fn maps `question` strings `[batch]` to named outputs."""

    def serving_bundle(self, model: keras.Model, top_k: int) -> ServingBundle:
        """What the export writes; tasks with extra signatures or variables override it."""
        serve, trackables = self.serving_function(model, top_k)
        return ServingBundle(serve, trackables)

    def export_reference(
        self, model: keras.Model, bundle: ServingBundle, questions: list[str], top_k: int
    ) -> dict[str, np.ndarray]:
        """The in-process answers that an export of `bundle`, reloaded, must reproduce.

        `predict` by default; a task whose bundle holds costly state built from
        the model (retrieval: the embedded answer bank) answers from `bundle`
        instead of building it again.
        """
        del bundle
        return self.predict(model, questions, top_k)

    def initialize_weights(self, model: keras.Model, source: InitSource) -> TransferReport | None:
        """Starts `model` from `source` in a task's own way, or `None` to copy weights by name.

        `training/initialize.py` asks this first; by default every task
        starts from the source's weights by name and shape.
        """
        del model, source
        return None

    # -- persistence ---------------------------------------------------------

    def save_model(self, model: keras.Model, run_dir: Path) -> None:
        """Writes the trained model into the run directory (`model.keras`, atomically).

        The file holds the weights and the compile settings but not the
        optimizer's state: Adam's two moments per weight would triple it
        (a fully fine-tuned 135M-parameter LM: 1.6 GB instead of 0.54 GB),
        and nothing reads them. A finished run answers, exports and starts
        `--init-from` runs, which build a fresh optimizer; resuming reads
        `checkpoints/`. Loading the file with `compile=True` gives a fresh
        optimizer (Keras warns that it skips the missing variables).
        """
        optimizer = getattr(model, "optimizer", None)  # an uncompiled model has none
        if optimizer is not None:
            model.optimizer = None  # Keras 3's save has no include_optimizer
        try:
            with replacing(run_dir / MODEL_FILE) as tmp:
                model.save(tmp)
        finally:
            if optimizer is not None:
                model.optimizer = optimizer

    def read_model(self, run_dir: Path) -> keras.Model:
        """Reads what `save_model` wrote (never running code from the file: `models/loading.py`)."""
        return load_keras_model(run_dir / MODEL_FILE)

    @abc.abstractmethod
    def save(self, directory: Path) -> None:
        """Writes what the task needs besides the model (vocabularies, labels)."""

    @abc.abstractmethod
    def restore(self, directory: Path) -> None:
        """Reads what `save` wrote."""
