"""Answer classification: every distinct answer (or label) is a class.

This is the corrected form of the source article's head: a softmax over the
known answers trained with sparse categorical cross-entropy, instead of
`Dense(1, sigmoid)` + binary cross-entropy on token lists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from keras import ops

from qa_assistant.atomic import write_text
from qa_assistant.data.dataset import QAData
from qa_assistant.data.pipeline import as_targets, ids_dataset, make_dataset
from qa_assistant.data.split import Splits
from qa_assistant.layout import LABELS_FILE, PREPROCESSOR_DIR
from qa_assistant.metrics.baselines import tfidf_logistic_regression
from qa_assistant.metrics.ranking import (
    classification_metrics,
    group_references,
    predictions_frame,
    rank_candidates,
    ranking_metrics,
)
from qa_assistant.personalization.transfer import Remap, index_map
from qa_assistant.tasks.base import Task
from qa_assistant.text.cleaning import one_line
from qa_assistant.text.tokenizer_factory import load_tokenizer

log = logging.getLogger(__name__)

HEAD = "answer_logits"  # the class head: one column per answer


class ClassificationTask(Task):
    """Softmax classifier over the answers (or `data.target` labels) seen in training."""

    name = "classify"
    confusion_matrix = True
    headline_metrics = ("accuracy", "f1_macro", "recall_at_5", "mrr")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.labels: list[str] = []
        self.target = config.data.target

    # -- preprocessing -------------------------------------------------------

    def prepare(self, data: QAData) -> None:
        train = data.splits.train
        self.tokenizer = self.build_tokenizer(train["question"].tolist())
        self.labels = sorted(train[self.target].unique().tolist())

    def label_ids(self, frame: pd.DataFrame) -> np.ndarray:
        """Class id of each row's target; -1 for a label unseen in training."""
        index = {label: i for i, label in enumerate(self.labels)}
        return np.asarray([index.get(v, -1) for v in frame[self.target]], dtype=np.int32)

    def _ids(self, questions: list[str]) -> tf.RaggedTensor:
        return self.tokenizer.tokenize(tf.constant(questions, dtype=tf.string))

    # -- training ------------------------------------------------------------

    def dataset(self, frame: pd.DataFrame, *, training: bool) -> tf.data.Dataset:
        if training:
            frame = self.training_rows(frame)
        targets = self.label_ids(frame)
        keep = targets >= 0  # unseen labels cannot be learned (validation never has them)
        return make_dataset(
            self._ids(frame["question"][keep].tolist()),
            as_targets(targets[keep]),
            batch_size=self.config.train.batch_size,
            max_length=self.config.text.max_length,
            shuffle=training,
            seed=self.config.train.seed,
        )

    def build_model(self) -> keras.Model:
        members = self.config.task.ensemble
        if members == 1:
            token_ids, logits = self._member()
            return keras.Model(token_ids, logits, name="classifier")
        # A deep ensemble: members with their own weights (drawn one after the other from the
        # run's seed) read the same token ids; their logits are stacked on a member axis,
        # which the loss, the metrics and `ensemble_probabilities` read.
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        stacked = []
        for index in range(members):
            model = keras.Model(*self._member(), name=f"member_{index + 1}")
            stacked.append(keras.layers.Reshape((1, len(self.labels)))(model(token_ids)))
        logits = keras.layers.Concatenate(axis=1, name="member_logits", dtype="float32")(stacked)
        return keras.Model(token_ids, logits, name="classifier")

    def _member(self) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        """`(token_ids input, class logits)` of one classifier: an encoder and the class head."""
        token_ids, pooled = self.pooled_encoding()
        if self.config.encoder.dropout:
            pooled = keras.layers.Dropout(self.config.encoder.dropout, name="head_dropout")(pooled)
        return token_ids, keras.layers.Dense(len(self.labels), dtype="float32", name=HEAD)(pooled)

    def compile(self, model: keras.Model, *, jit_compile: bool) -> None:
        top_k = min(5, len(self.labels))
        ensemble = self.config.task.ensemble > 1
        accuracy = EnsembleAccuracy if ensemble else keras.metrics.SparseCategoricalAccuracy
        top_k_accuracy = EnsembleTopKAccuracy if ensemble else keras.metrics.SparseTopKCategoricalAccuracy
        model.compile(
            optimizer=self.optimizer(model),
            loss=SmoothedSparseCrossentropy(self.config.task.label_smoothing),
            metrics=[accuracy(name="accuracy"), top_k_accuracy(k=top_k, name=f"top{top_k}_accuracy")],
            jit_compile=jit_compile,
        )

    # -- personalisation -----------------------------------------------------

    def weight_remaps(self, model: keras.Model) -> dict[str, Remap]:
        """Adds the class head: answers the base also had keep their columns, new answers start fresh."""
        remaps = super().weight_remaps(model)
        base_labels = self.init_source.labels if self.init_source is not None else None
        if base_labels is not None:
            # A base trained before answers kept their lines holds their one-line forms.
            normalize = self.config.text.normalize
            index = index_map(
                [one_line(a, normalize) for a in self.labels], [one_line(a, normalize) for a in base_labels]
            )
            log.info(
                "class head: %d of %d answers kept from the base model, %d new",
                int((index >= 0).sum()),
                len(self.labels),
                int((index < 0).sum()),
            )
            remaps[f"{HEAD}/kernel"] = Remap(axis=1, index=index, what="answers")
            remaps[f"{HEAD}/bias"] = Remap(axis=0, index=index, what="answers")
        return remaps

    def projector_embeddings(self, model: keras.Model) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Word embeddings, and each answer's vector: its column of the class head."""
        found = super().projector_embeddings(model)
        # An ensemble's members each have their own answer vectors, in their own spaces: the first member's.
        head = (
            model.get_layer(HEAD)
            if self.config.task.ensemble == 1
            else model.get_layer("member_1").get_layer(HEAD)
        )
        found["answers"] = (np.asarray(head.kernel.numpy()).T, list(self.labels))
        return found

    # -- evaluation ----------------------------------------------------------

    def scores(self, model: keras.Model, questions: list[str]) -> np.ndarray:
        """Softmax probabilities `[n, classes]` for cleaned questions."""
        if not questions:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        batches = ids_dataset(
            self._ids(questions),
            batch_size=max(64, self.config.train.batch_size),
            max_length=self.config.text.max_length,
        )
        return keras.ops.convert_to_numpy(ensemble_probabilities(model.predict(batches, verbose=0)))

    def evaluate(self, model: keras.Model, frame: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
        """Per distinct question: right when the predicted label is any of its rows' labels."""
        questions, references = group_references(frame["question"].tolist(), frame[self.target].tolist())
        scored = rank_candidates(self.scores(model, questions), self.labels, references)
        metrics = {
            **classification_metrics(references, scored.predicted),
            **ranking_metrics(scored.rank),
            "num_questions": len(questions),
        }
        return metrics, predictions_frame(questions, references, scored)

    def baseline(self, splits: Splits) -> dict[str, float]:
        return tfidf_logistic_regression(
            splits.train["question"].tolist(),
            splits.train[self.target].tolist(),
            splits.test["question"].tolist(),
            splits.test[self.target].tolist(),
            seed=self.config.train.seed,
        )

    def predict(self, model: keras.Model, questions: list[str], top_k: int) -> dict[str, np.ndarray]:
        outputs = self.serving_function(model, top_k)[0](tf.constant(questions, dtype=tf.string))
        return {k: v.numpy() for k, v in outputs.items()}

    # -- serving -------------------------------------------------------------

    def serving_function(self, model: keras.Model, top_k: int) -> tuple[Any, list[Any]]:
        tokenizer = self.tokenizer
        labels = tf.constant(self.labels)
        k = min(top_k, len(self.labels))

        def serve(question: tf.Tensor) -> dict[str, tf.Tensor]:
            probabilities = ensemble_probabilities(model(tokenizer(question), training=False))
            top = tf.math.top_k(probabilities, k=k)
            return {
                "answer": tf.gather(labels, top.indices[:, 0]),
                "score": top.values[:, 0],
                "top_k_answers": tf.gather(labels, top.indices),
                "top_k_scores": top.values,
            }

        return serve, [model, tokenizer]

    # -- persistence ---------------------------------------------------------

    def save(self, directory: Path) -> None:
        self.tokenizer.save_assets(directory / PREPROCESSOR_DIR)
        write_text(directory / LABELS_FILE, json.dumps(self.labels, ensure_ascii=False, indent=0))

    def restore(self, directory: Path) -> None:
        self.tokenizer = load_tokenizer(directory / PREPROCESSOR_DIR)
        self.labels = json.loads((directory / LABELS_FILE).read_text(encoding="utf-8"))


def ensemble_probabilities(logits: Any) -> Any:
    """Class probabilities `[n, classes]` of the classifier's logits.

    The logits are `[n, classes]`, or `[n, members, classes]` for an ensemble
    (`task.ensemble` > 1), whose members' probabilities are averaged.
    """
    probabilities = ops.softmax(ops.cast(logits, "float32"), axis=-1)
    return ops.mean(probabilities, axis=1) if len(probabilities.shape) == 3 else probabilities


@keras.saving.register_keras_serializable(package="qa_assistant")
class EnsembleAccuracy(keras.metrics.SparseCategoricalAccuracy):
    """Accuracy of an ensemble's averaged probabilities (`ensemble_probabilities`)."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(y_true, ensemble_probabilities(y_pred), sample_weight)


@keras.saving.register_keras_serializable(package="qa_assistant")
class EnsembleTopKAccuracy(keras.metrics.SparseTopKCategoricalAccuracy):
    """Top-k accuracy of an ensemble's averaged probabilities (`ensemble_probabilities`)."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(y_true, ensemble_probabilities(y_pred), sample_weight)


@keras.saving.register_keras_serializable(package="qa_assistant")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy from logits against integer labels, with label smoothing.

    The target is `1 - smoothing` on the label plus `smoothing / classes` on
    every class, so the loss is `(1 - smoothing) * nll + smoothing * mean
    over classes of -log p`. Keras' sparse cross-entropy has no smoothing
    (its dense one needs one-hot targets); with `smoothing = 0` this equals it.

    Logits `[batch, members, classes]` (an ensemble) give each example the
    mean of its members' losses: each member is trained on its own
    cross-entropy, as if alone, not on the ensemble's average (training the
    average couples the members and loses what makes an ensemble better than
    one model; Jeffares et al. 2023).
    """

    def __init__(
        self, smoothing: float = 0.0, name: str = "smoothed_sparse_crossentropy", **kwargs: Any
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.smoothing = float(smoothing)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = ops.cast(y_pred, "float32")
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        members = logits.shape[1] if len(logits.shape) == 3 else 0
        if members:  # one row per example and member, in that order
            logits = ops.reshape(logits, (-1, logits.shape[-1]))
            labels = ops.repeat(labels, members)
        log_probs = ops.log_softmax(logits, axis=-1)
        loss = -ops.squeeze(ops.take_along_axis(log_probs, ops.expand_dims(labels, 1), axis=1), 1)
        if self.smoothing:
            loss = (1.0 - self.smoothing) * loss - self.smoothing * ops.mean(log_probs, axis=-1)
        return ops.mean(ops.reshape(loss, (-1, members)), axis=1) if members else loss

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "smoothing": self.smoothing}
