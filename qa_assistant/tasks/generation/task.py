"""Answer generation: an encoder-decoder writes the answer token by token.

Training uses teacher forcing: the decoder reads `[START] + answer` and
learns to predict `answer + [END]`, with a cross-entropy that ignores
padding. Questions keep the run's cleaning (lower-cased by default);
answers are what the assistant says, so their tokenizer keeps case and is
reversible (generated text reads like the training answers, punctuation
attached).

The export decodes inside the SavedModel (`qa_assistant.models.decoding`):
`serving_default` with the configured options, `generate` with per-request
options, and `score` for the likelihood of a given answer.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, ClassVar

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.data.dataset import QAData
from qa_assistant.data.pipeline import make_dataset
from qa_assistant.data.split import Splits
from qa_assistant.layout import ANSWER_PREPROCESSOR_DIR, PREPROCESSOR_DIR
from qa_assistant.metrics.baselines import tfidf_nearest_answers
from qa_assistant.metrics.generation import (
    MaskedTokenAccuracy,
    evaluate_generation,
    masked_loss,
    text_metrics,
)
from qa_assistant.models.decoders import build_seq2seq, get_decoder_builder
from qa_assistant.tasks.base import ServingBundle, Task
from qa_assistant.tasks.generation.generator import (
    ANSWER,
    END,
    OPTIONS,
    QUESTION,
    START,
    Generator,
    teacher_forcing,
)
from qa_assistant.text.tokenizer_factory import load_tokenizer
from qa_assistant.text.word_tokenizer import WordTokenizer

log = logging.getLogger(__name__)


class GenerationTask(Task):
    """Sequence-to-sequence answer generation (`task.type: generate`)."""

    name = "generate"
    # What sweeps and tables show, the first being `tune`'s default objective.
    headline_metrics = ("rouge_l", "bleu", "exact_match", "perplexity")
    # Rows per teacher-forced scoring call in evaluation: it holds `[rows, length,
    # vocabulary]` logits at once (decoding holds one position's: it takes 64 questions).
    score_batch_size: ClassVar[int] = 64

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        get_decoder_builder(config.decoder.type)  # fail on a bad name before reading any data
        self.target_tokenizer: WordTokenizer | None = None
        self._generator: tuple[keras.Model, Generator] | None = None

    # -- preprocessing -------------------------------------------------------

    def prepare(self, data: QAData) -> None:
        train = data.splits.train
        self.tokenizer = self.build_tokenizer(train["question"].tolist())
        answers = train["answer"].tolist()
        text = self.config.text
        # Answers are written, not read: a word tokenizer that keeps case and
        # is reversible, whatever tokenizer reads the questions.
        self.target_tokenizer = WordTokenizer.from_texts(
            answers,
            max_tokens=text.max_tokens,
            min_count=text.min_count,
            reserved_tokens=(START, END),
            max_length=self.config.decoder.max_length - 1,  # room for [START] / [END]
            lowercase=False,
            normalize=text.normalize,
            strip_html=text.strip_html,
            max_chars=None,  # answers were cleaned for display, without a length cap
            reversible=True,
        )
        lengths = self.target_tokenizer.split(tf.constant(answers)).row_lengths().numpy()
        cut = int(np.sum(lengths > self.config.decoder.max_length - 1))
        if cut:
            log.warning(
                "%d of %d training answers are longer than decoder.max_length - 1 = %d tokens "
                "(the longest has %d) and are cut; the model cannot reproduce them in full",
                cut,
                len(answers),
                self.config.decoder.max_length - 1,
                int(lengths.max()),
            )

    # -- training ------------------------------------------------------------

    def dataset(self, frame: pd.DataFrame, *, training: bool) -> tf.data.Dataset:
        questions = self.tokenizer.tokenize(tf.constant(frame["question"].tolist(), dtype=tf.string))
        answers = self.target_tokenizer.tokenize(tf.constant(frame["answer"].tolist(), dtype=tf.string))
        inputs, targets = teacher_forcing(answers, *self._special_ids())
        return make_dataset(
            {"token_ids": questions, "decoder_ids": inputs},
            targets,
            batch_size=self.config.train.batch_size,
            max_length=max(self.config.text.max_length, self.config.decoder.max_length),
            shuffle=training,
            seed=self.config.train.seed,
        )

    def build_model(self) -> keras.Model:
        return build_seq2seq(
            self.config,
            self.tokenizer.vocabulary_size,
            self.target_tokenizer.vocabulary_size,
            self.embedding_matrix(),
        )

    def compile(self, model: keras.Model, *, jit_compile: bool) -> None:
        import keras_hub  # deferred: start-up time

        model.compile(
            optimizer=self.optimizer(model),  # the train section's schedule and warm-up, as every task
            loss=masked_loss(),
            metrics=[
                MaskedTokenAccuracy(),
                keras_hub.metrics.Perplexity(from_logits=True, mask_token_id=0, name="perplexity"),
            ],
            weighted_metrics=None,  # a keras-hub CausalLM would otherwise add its own token accuracy
            jit_compile=jit_compile,
        )

    # -- evaluation ----------------------------------------------------------

    def generator(self, model: keras.Model) -> Generator:
        """The graph functions for `model` (built once per model and reused)."""
        if self._generator is None or self._generator[0] is not model:
            generator = Generator(
                model,
                self.tokenizer,
                self.target_tokenizer,
                self.config.decoding,
                max_length=self.config.decoder.max_length,
            )
            self._generator = (model, generator)
        return self._generator[1]

    def evaluate(self, model: keras.Model, frame: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
        generator = self.generator(model)
        return evaluate_generation(
            frame,
            lambda q: generator.answer(tf.constant(q, dtype=tf.string)),
            lambda q, a: generator.score(tf.constant(q, dtype=tf.string), tf.constant(a, dtype=tf.string)),
            score_batch_size=self.score_batch_size,
        )

    def sample_predictions(self, model: keras.Model, frame: pd.DataFrame) -> pd.DataFrame:
        """`evaluate`'s per-question answers without its likelihood pass, on every row of `frame`.

        The per-epoch TensorBoard table only needs the answers, so this skips
        the `score` pass that `evaluate` makes for perplexity.
        """
        generator = self.generator(model)
        _, per_question = evaluate_generation(
            frame, lambda q: generator.answer(tf.constant(q, dtype=tf.string)), None
        )
        rows = per_question.set_index("question").loc[frame["question"]]
        return pd.DataFrame(
            {
                "question": frame["question"].to_numpy(),
                "reference": [" | ".join(references) for references in rows["references"]],
                "predicted": rows["predicted"].to_numpy(),
                "score": rows["score"].to_numpy(),
                "correct": rows["exact"].to_numpy(),
            }
        )

    def epoch_metrics(self, model: keras.Model, frame: pd.DataFrame) -> dict[str, float]:
        """`rouge_l`, `bleu` and `exact_match` of the answers the model decodes for `frame`.

        Decoded as the export would (the configured options, guards included):
        teacher-forced loss keeps falling on answers a model cannot yet write,
        so early stopping on it can keep a model that loops (`train.monitor: val_rouge_l`).
        """
        generator = self.generator(model)
        metrics, _ = evaluate_generation(
            frame, lambda q: generator.answer(tf.constant(q, dtype=tf.string)), None
        )
        return {key: metrics[key] for key in ("rouge_l", "bleu", "exact_match")}

    def baseline(self, splits: Splits) -> dict[str, float]:
        grouped = splits.test.groupby("question", sort=False)["answer"].agg(list)
        retrieved = tfidf_nearest_answers(
            splits.train["question"].tolist(), splits.train["answer"].tolist(), grouped.index.tolist()
        )
        return text_metrics(grouped.tolist(), retrieved)

    def predict(self, model: keras.Model, questions: list[str], top_k: int) -> dict[str, np.ndarray]:
        out = self.generator(model).answer(tf.constant(questions, dtype=tf.string))
        return {k: v.numpy() for k, v in out.items()}

    # -- serving -------------------------------------------------------------

    def serving_function(self, model: keras.Model, top_k: int) -> tuple[Any, list[Any]]:
        """`answer(question)`; `top_k` is unused (the outputs' top-k are beam-search hypotheses)."""
        generator = self.generator(model)
        return generator.answer, generator.trackables

    def serving_bundle(self, model: keras.Model, top_k: int) -> ServingBundle:
        """`serving_default`, plus `generate` (per-request options) and `score` (an answer's likelihood)."""
        generator = self.generator(model)
        return ServingBundle(
            generator.answer,
            generator.trackables,
            endpoints={
                "generate": (generator.generate, [QUESTION, *OPTIONS]),
                "score": (generator.score, [QUESTION, ANSWER]),
            },
        )

    # -- persistence ---------------------------------------------------------

    def save(self, directory: Path) -> None:
        self.tokenizer.save_assets(directory / PREPROCESSOR_DIR)
        self.target_tokenizer.save_assets(directory / ANSWER_PREPROCESSOR_DIR)

    def restore(self, directory: Path) -> None:
        self.tokenizer = load_tokenizer(directory / PREPROCESSOR_DIR)
        self.target_tokenizer = WordTokenizer.load_assets(directory / ANSWER_PREPROCESSOR_DIR)

    def _special_ids(self) -> tuple[int, int]:
        vocabulary = self.target_tokenizer.vocabulary
        return vocabulary.index(START), vocabulary.index(END)
