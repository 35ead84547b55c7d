"""The dual encoder's head: scaled cosine similarities, in-batch losses and accuracy.

A batch holds B (question, answer) pairs. Both towers give unit vectors, so
`q @ a.T` is a `[B, B]` matrix of cosine similarities; row i's own answer is
column i, and the other answers of the batch are its negatives. The targets
are the answers' ids in the answer bank: two rows of a batch with the same
answer must not count each other's answer as a negative.

* softmax loss: cross-entropy of row i over the batch's answers (the other
  rows' answers are the negatives), similarities divided by a temperature;
* symmetric loss: that, averaged with the cross-entropy of answer i over
  the batch's questions (CLIP's loss): the answer tower also learns to
  pick its question out of the batch;
* sigmoid loss: every (question, answer) cell of the batch is a binary
  decision, `sigmoid(scale * cos + bias)`; the cells off the diagonal are the
  sampled negatives. This is the source article's `Dense(1, sigmoid)` idea
  done right: a score for a (question, answer) pair, trained against wrong
  answers, instead of a sigmoid over answer token lists.

With `task.hard_negatives` every row also brings one mined wrong answer
(`tasks/retrieval/mining.py`): the logits are `[B, 2B]`, the batch's answers
then its hard negatives, and a negative that is some row's right answer is
masked like a duplicate.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

MAX_SCALE = 100.0  # caps a learned 1/temperature, as CLIP does, so logits cannot run away
SIGMOID_BIAS = -10.0  # initial bias of the sigmoid loss: most cells of a batch are negatives


@keras.saving.register_keras_serializable(package="qa_assistant")
class ScaledSimilarity(keras.layers.Layer):
    """`[Bq, d] x [Ba, d]` unit vectors -> `[Bq, Ba]` logits `cos / temperature (+ bias)`.

    Args:
        temperature: initial (or fixed) temperature.
        learn_temperature: train `log(1 / temperature)`.
        use_bias: add a learned bias (the sigmoid loss needs one).

    Example:

    >>> import numpy as np
    >>> q = np.array([[1.0, 0.0]], dtype="float32")
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0]], dtype="float32")
    >>> ScaledSimilarity(temperature=0.5)(q, a).numpy().round(3).tolist()
    [[2.0, 0.0]]
    """

    def __init__(
        self, temperature: float = 0.05, learn_temperature: bool = True, use_bias: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.temperature = float(temperature)
        self.learn_temperature = bool(learn_temperature)
        self.use_bias = bool(use_bias)

    def build(self, questions_shape: Any, answers_shape: Any = None) -> None:
        self.log_scale = self.add_weight(
            name="log_scale",
            shape=(),
            initializer=keras.initializers.Constant(math.log(1.0 / self.temperature)),
            trainable=self.learn_temperature,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(), initializer=keras.initializers.Constant(SIGMOID_BIAS)
            )
        self.built = True

    @property
    def scale(self) -> Any:
        return ops.exp(ops.minimum(self.log_scale, math.log(MAX_SCALE)))

    def call(self, questions: Any, answers: Any) -> Any:
        logits = ops.matmul(questions, ops.transpose(answers)) * self.scale
        return logits + self.bias if self.bias is not None else logits

    def compute_output_shape(self, questions_shape: tuple, answers_shape: tuple) -> tuple:
        return (questions_shape[0], answers_shape[0])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "temperature": self.temperature,
            "learn_temperature": self.learn_temperature,
            "use_bias": self.use_bias,
        }


def _same_answer(y_true: Any) -> Any:
    """`[B, C]`: row i's answer equals column j's answer.

    `y_true` is `[B]` answer ids (the columns are the batch's answers, C = B)
    or `[B, 2]` (answer id, hard-negative id): the columns are the B answers,
    then the B hard negatives (C = 2B), as `build_model` concatenates them.
    """
    ids = ops.cast(y_true, "int32")
    if len(ids.shape) == 2 and ids.shape[1] == 2:
        rows, columns = ids[:, 0], ops.concatenate([ids[:, 0], ids[:, 1]], axis=0)
    else:
        rows = columns = ops.reshape(ids, (-1,))
    return ops.equal(ops.expand_dims(rows, 1), ops.expand_dims(columns, 0))


def _masked_logits(y_true: Any, y_pred: Any) -> Any:
    """`y_pred` with every column that holds row i's answer, other than its own (i, i), set to -1e9."""
    shape = ops.shape(y_pred)
    own = ops.cast(ops.eye(shape[0], shape[1]), "bool")  # the first B columns are the batch's answers
    duplicates = ops.logical_and(_same_answer(y_true), ops.logical_not(own))
    return ops.where(duplicates, ops.cast(-1e9, y_pred.dtype), y_pred)


@keras.saving.register_keras_serializable(package="qa_assistant")
class InBatchSoftmaxLoss(keras.losses.Loss):
    """Cross-entropy of each question over the batch's answers; duplicates of its answer are masked."""

    def call(self, y_true: Any, y_pred: Any) -> Any:
        logits = _masked_logits(y_true, y_pred)
        labels = ops.arange(ops.shape(y_pred)[0])
        return keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)


@keras.saving.register_keras_serializable(package="qa_assistant")
class SymmetricInBatchSoftmaxLoss(keras.losses.Loss):
    """The mean of the question->answer and the answer->question in-batch cross-entropies (CLIP's loss).

    Row i's loss is the average of question i choosing its answer among the
    batch's answers and answer i choosing its question among the batch's
    questions; other rows with the same answer are masked out both ways, so
    an answer with several questions in the batch has no false negatives.
    """

    def call(self, y_true: Any, y_pred: Any) -> Any:
        size = ops.shape(y_pred)[0]
        logits = _masked_logits(y_true, y_pred)
        labels = ops.arange(size)
        forward = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        # An answer chooses among the batch's questions; hard negatives have no question of their own.
        backward = keras.losses.sparse_categorical_crossentropy(
            labels, ops.transpose(logits[:, :size]), from_logits=True
        )
        return (forward + backward) / 2


@keras.saving.register_keras_serializable(package="qa_assistant")
class PairSigmoidLoss(keras.losses.Loss):
    """Binary cross-entropy of every (question, answer) cell; positive where the answers match."""

    def call(self, y_true: Any, y_pred: Any) -> Any:
        labels = ops.cast(_same_answer(y_true), y_pred.dtype)
        cells = ops.binary_crossentropy(labels, y_pred, from_logits=True)
        return ops.sum(cells, axis=1)


@keras.saving.register_keras_serializable(package="qa_assistant")
def in_batch_accuracy(y_true: Any, y_pred: Any) -> Any:
    """1 where a question's best-scoring answer in the batch is its own answer."""
    best = ops.argmax(y_pred, axis=1)
    hit = ops.take_along_axis(_same_answer(y_true), ops.expand_dims(best, 1), axis=1)
    return ops.cast(ops.squeeze(hit, 1), "float32")


def retrieval_loss(kind: str) -> keras.losses.Loss:
    """`softmax`, `symmetric` or `sigmoid` (validated by the config)."""
    losses = {
        "softmax": InBatchSoftmaxLoss,
        "symmetric": SymmetricInBatchSoftmaxLoss,
        "sigmoid": PairSigmoidLoss,
    }
    return losses[kind](name=f"{kind}_loss")
