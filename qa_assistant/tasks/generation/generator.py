"""Raw questions in, generated answers out: the tf.functions an export serves.

`Generator` binds a trained encoder-decoder to its two tokenizers and
compiles three graph functions. Evaluation, the TensorBoard samples, the
comparison script and the SavedModel all call these same functions:

* `answer(question)` — decoding options fixed from the config
  (`serving_default`): `answer`, its log-probability `score`, its `length`
  in tokens (end token included), whether it `finished` (false when cut
  at the length limit), and all hypotheses with their scores as
  `top_k_answers` / `top_k_scores` (one unless beam search);
* `generate(question, strategy, beam_width, top_k, top_p, temperature,
  seed, max_length, length_penalty, no_repeat_ngram, repetition_penalty,
  min_length)` — the same with per-request options (an empty strategy or a
  negative number keeps the configured value);
* `score(question, answer)` — teacher-forced log-probability of a given
  answer, its token count and how many tokens the model predicts right
  (perplexity and token accuracy from an export).
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from qa_assistant.config import DecodingConfig
from qa_assistant.models.decoding import SearchOptions, SearchResult, search
from qa_assistant.text.word_tokenizer import OOV, WordTokenizer

START = "[START]"
END = "[END]"
QUESTION = tf.TensorSpec([None], tf.string, name="question")
ANSWER = tf.TensorSpec([None], tf.string, name="answer")
OPTIONS = (
    tf.TensorSpec([], tf.string, name="strategy"),
    tf.TensorSpec([], tf.int32, name="beam_width"),
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int64, name="seed"),
    tf.TensorSpec([], tf.int32, name="max_length"),
    tf.TensorSpec([], tf.float32, name="length_penalty"),
    tf.TensorSpec([], tf.int32, name="no_repeat_ngram"),
    tf.TensorSpec([], tf.float32, name="repetition_penalty"),
    tf.TensorSpec([], tf.int32, name="min_length"),
)


def teacher_forcing(target_ids: tf.RaggedTensor, start_id: int, end_id: int) -> tuple[Any, Any]:
    """`(decoder inputs, targets)`: `[START] + answer` and `answer + [END]`, ragged.

    Example:

    >>> inputs, targets = teacher_forcing(tf.ragged.constant([[7, 8], [9]]), 2, 3)
    >>> inputs.to_list(), targets.to_list()
    ([[2, 7, 8], [2, 9]], [[7, 8, 3], [9, 3]])
    """
    rows = target_ids.nrows()
    start = tf.RaggedTensor.from_row_lengths(tf.fill([rows], start_id), tf.ones([rows], tf.int64))
    end = tf.RaggedTensor.from_row_lengths(tf.fill([rows], end_id), tf.ones([rows], tf.int64))
    target_ids = tf.cast(target_ids, tf.int32)
    return tf.concat([start, target_ids], axis=1), tf.concat([target_ids, end], axis=1)


class Generator:
    """The graph functions that answer with a trained encoder-decoder.

    Args:
        model: the `build_seq2seq` model (layers `encoder` and `decoder`).
        source: question tokenizer.
        target: answer tokenizer (reversible, with `[START]` and `[END]`).
        decoding: default decoding options.
        max_length: tokens generated when `decoding.max_length` is unset, and
            the most a request may ask for (the decoder's `max_length`).
    """

    def __init__(
        self,
        model: keras.Model,
        source: WordTokenizer,
        target: WordTokenizer,
        decoding: DecodingConfig,
        max_length: int,
    ) -> None:
        self.model = model
        self.source = source
        self.target = target
        self.encoder = model.get_layer("encoder")
        self.decoder = model.get_layer("decoder")
        self.max_length = max_length
        self.defaults = SearchOptions.from_config(decoding, max_length)
        self.start_id = target.vocabulary.index(START)
        self.end_id = target.vocabulary.index(END)
        self.unknown_id = target.vocabulary.index(OOV)
        # autograph off: the loops are explicit tf.while_loops, and tracing skips
        # autograph's source rewriting.
        self.answer = tf.function(self._answer, input_signature=[QUESTION], autograph=False)
        self.generate = tf.function(self._generate, input_signature=[QUESTION, *OPTIONS], autograph=False)
        self.score = tf.function(self._score, input_signature=[QUESTION, ANSWER], autograph=False)

    @property
    def trackables(self) -> list[Any]:
        """What an export must track: the model's variables and both vocabularies."""
        return [self.model, self.source, self.target]

    def _answer(self, question: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._run(question, self.defaults)

    def _generate(
        self, question: tf.Tensor, strategy: tf.Tensor, *numbers: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        return self._run(question, self.defaults.override(strategy, *numbers))

    def _run(self, question: tf.Tensor, options: SearchOptions) -> dict[str, tf.Tensor]:
        # No answer is longer than the model was trained for, whatever was asked.
        options = options._replace(max_length=tf.minimum(options.max_length, self.max_length))
        cleaned = self.source.clean(question)
        encoded = self.encoder(self.source.tokenize(cleaned).to_tensor(), training=False)
        result = search(
            self.decoder,
            encoded,
            options,
            start_id=self.start_id,
            end_id=self.end_id,
            row_keys=cleaned,
        )
        texts = self.target.detokenize(tf.where(result.tokens == self.end_id, 0, result.tokens))
        return search_outputs(result, texts, self.end_id)

    def _score(self, question: tf.Tensor, answer: tf.Tensor) -> dict[str, tf.Tensor]:
        question_ids = self.source(question)
        answer_ids = self.target.tokenize(self.target.clean(answer))
        inputs, targets = teacher_forcing(answer_ids, self.start_id, self.end_id)
        logits = self.model({"token_ids": question_ids, "decoder_ids": inputs.to_tensor()}, training=False)
        # Reference words outside the answer vocabulary: perplexity scores them as "[UNK]",
        # which flatters it, so the rate is reported beside it.
        return teacher_forced_scores(logits, targets.to_tensor(), self.unknown_id)


def search_outputs(result: SearchResult, texts: tf.Tensor, end_id: int) -> dict[str, tf.Tensor]:
    """The outputs every generator serves from a `search` result and its `[batch, width]` texts.

    `finished` is false where the answer has no end token: it was cut at the
    decoding `max_length` (or the model's limit).
    """
    return {
        "answer": texts[:, 0],
        "score": result.scores[:, 0],
        "length": tf.math.count_nonzero(result.tokens[:, 0], axis=-1, dtype=tf.int32),
        "finished": tf.reduce_any(tf.equal(result.tokens[:, 0], end_id), axis=-1),
        "top_k_answers": texts,
        "top_k_scores": result.scores,
    }


def teacher_forced_scores(
    logits: tf.Tensor, targets: tf.Tensor, unknown_id: int | None
) -> dict[str, tf.Tensor]:
    """What `score` serves: the targets' summed log-probability, token counts, correct and unknown tokens.

    Args:
        logits: `[batch, length, vocabulary]` predictions.
        targets: `[batch, length]` ids; 0 is not scored (padding, or a prompt's tokens).
        unknown_id: the out-of-vocabulary id, or `None` when no token is unknown
            (byte-level BPE).
    """
    real = tf.cast(targets != 0, tf.float32)
    logits = tf.cast(logits, tf.float32)
    # log_softmax of the targets alone: no second [batch, length, vocabulary] tensor is kept.
    picked = tf.gather(logits, targets, batch_dims=2) - tf.reduce_logsumexp(logits, axis=-1)
    hits = tf.cast(tf.argmax(logits, axis=-1, output_type=tf.int32) == targets, tf.float32)
    unknown = tf.zeros_like(real) if unknown_id is None else tf.cast(targets == unknown_id, tf.float32)
    return {
        "log_probability": tf.reduce_sum(picked * real, axis=-1),
        "tokens": tf.reduce_sum(real, axis=-1),
        "correct_tokens": tf.reduce_sum(hits * real, axis=-1),
        "unknown_tokens": tf.reduce_sum(unknown * real, axis=-1),
    }
