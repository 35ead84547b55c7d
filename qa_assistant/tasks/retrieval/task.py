"""Answer retrieval with a dual encoder: rank every known answer for a new question.

A question tower and an answer tower (one shared encoder by default) map
text to unit vectors; a question's score for an answer is their cosine
similarity. Training uses the other answers of each batch as negatives
(`tasks/retrieval/head.py`). The answer bank is every distinct answer of all
the given data (train, validation and test), as in a real FAQ where the
answers are known and the questions are new; evaluation ranks each test
question against the whole bank. Unlike a classifier, the bank can grow
without retraining (`qa-assistant index`).

After training, `task.weight_averaging` below 1 moves the trained weights
part of the way back to the ones training started from, and a cosine
threshold is calibrated on the validation split when it has enough questions
and the threshold helps there (`finalize`); the export answers
`task.fallback_answer` below it. `text.answer_max_length:
null` is set from the training answers' lengths (`settings_from_data`).
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.atomic import replacing, write_text
from qa_assistant.config import Config
from qa_assistant.data.dataset import QAData
from qa_assistant.data.pipeline import as_targets, ids_dataset, make_dataset
from qa_assistant.data.split import Splits
from qa_assistant.errors import UserError
from qa_assistant.layout import ANSWERS_FILE, KNOWN_QUESTIONS_FILE, PREPROCESSOR_DIR, RETRIEVAL_FILE
from qa_assistant.metrics.baselines import tfidf_retrieval
from qa_assistant.metrics.ranking import (
    Scored,
    group_references,
    predictions_frame,
    rank_candidates,
    ranking_metrics,
    selective_metrics,
)
from qa_assistant.tasks.base import ServingBundle, Task
from qa_assistant.tasks.retrieval.bank import (
    BANK_COLLECTION,
    AnswerBank,
    conformal_threshold,
    fallback_threshold,
    mask_echoes,
    questions_needed,
    search,
)
from qa_assistant.tasks.retrieval.head import ScaledSimilarity, in_batch_accuracy, retrieval_loss
from qa_assistant.tasks.retrieval.mining import Scorer, mine_hard_negatives, tfidf_scorer
from qa_assistant.text.tokenizer_factory import load_tokenizer, with_max_length

log = logging.getLogger(__name__)

QUESTION_TOWER = "question_tower"
ANSWER_TOWER = "answer_tower"
# `text.answer_max_length: null` keeps this share of the training answers whole ...
ANSWER_LENGTH_PERCENTILE = 95
# ... up to this many tokens: attention cost grows with the square of the length.
ANSWER_LENGTH_CAP = 256


class RetrievalTask(Task):
    """Dual-encoder retrieval over the answer bank (see the module docstring)."""

    name = "retrieve"
    headline_metrics = ("recall_at_1", "recall_at_5", "mrr")

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.answer_tokenizer: Any = None
        self.bank: list[str] = []
        self.known: list[tuple[str, str]] = []  # (question, answer) pairs of all the data
        self._negative_scorer: Scorer | None = None  # ranks the bank for hard negatives
        self._right_answers: dict[str, set[str]] = {}  # question -> its answers in all the data
        self.threshold: float | None = None
        self.calibration: dict[str, Any] = {}
        self._start_weights: dict[str, np.ndarray] | None = None  # by path, for `task.weight_averaging` < 1

    # -- preprocessing -------------------------------------------------------

    def _fit_tokenizer(self, train: pd.DataFrame) -> Any:
        """The run's tokenizer over `train`; fitted once per split (`settings_from_data`, then `prepare`)."""
        fitted = getattr(self, "_fitted", None)
        if fitted is not None and fitted[0] is train:
            return fitted[1]
        answers = [a.lower() if self.config.text.lowercase else a for a in train["answer"]]
        tokenizer = self.build_tokenizer([*train["question"], *answers])
        self._fitted = (train, tokenizer)
        return tokenizer

    def settings_from_data(self, data: QAData) -> dict[str, Any]:
        """`text.answer_max_length` when null: long enough for most training answers (see the config)."""
        text, encoder = self.config.text, self.config.encoder
        if text.answer_max_length is not None:
            return {}
        cap = ANSWER_LENGTH_CAP
        if encoder.type == "transformer":
            cap = min(cap, encoder.max_positions)  # its position embedding ends there
        # Counted untruncated (a token holds at least one character), so the log tells what a cap cuts.
        counter = with_max_length(self._fit_tokenizer(data.splits.train), text.max_chars + 2)
        answers = sorted(set(data.splits.train["answer"]))  # the bank embeds each answer once
        if not answers:
            return {"text.answer_max_length": min(cap, text.max_length)}
        lengths = counter.tokenize(counter.clean(tf.constant(answers, dtype=tf.string))).row_lengths().numpy()
        percentile = int(np.percentile(lengths, ANSWER_LENGTH_PERCENTILE, method="higher"))
        chosen = min(cap, max(text.max_length, percentile))
        log.info(
            "text.answer_max_length = %d tokens, from the data: %d %% of the %d training answers fit "
            "(percentile %d: %d tokens; at least text.max_length %d, at most %d)",
            chosen,
            round(100 * float(np.mean(lengths <= chosen))),
            len(answers),
            ANSWER_LENGTH_PERCENTILE,
            percentile,
            text.max_length,
            cap,
        )
        return {"text.answer_max_length": chosen}

    def prepare(self, data: QAData) -> None:
        train = data.splits.train
        self.tokenizer = self._fit_tokenizer(train)
        self.answer_tokenizer = with_max_length(self.tokenizer, self.config.text.answer_max_length)
        frames = data.all_frames()
        self.bank = sorted(frames["answer"].unique().tolist())
        self.known = sorted(set(zip(frames["question"], frames["answer"], strict=True)))
        self._negative_scorer = None
        if self.config.task.hard_negatives == "tfidf":
            self._negative_scorer = tfidf_scorer(
                zip(train["question"], train["answer"], strict=True), self.bank
            )
        self._right_answers = {}
        for question, answer in self.known:
            self._right_answers.setdefault(question, set()).add(answer)
        log.info("answer bank: %d answers, %d known questions", len(self.bank), len(self.known))

    def _echoes(self, questions: list[str]) -> dict[str, set[str]]:
        """Question -> the bank answers with its very tokens (as the towers read them).

        With shared towers such an answer has the question's own vector: ranking
        never returns it (`bank.mask_echoes`), and as a hard negative it could
        not be pushed away, so mining skips it too.
        """

        def token_keys(ids: tf.RaggedTensor) -> list[bytes]:
            # Each tokenizer cuts at its own max_length: the rows are what the towers read.
            flat, splits = ids.flat_values.numpy(), ids.row_splits.numpy()
            return [flat[start:end].tobytes() for start, end in itertools.pairwise(splits)]

        by_tokens: dict[bytes, set[str]] = {}
        for answer, key in zip(self.bank, token_keys(self._answer_ids(self.bank)), strict=True):
            by_tokens.setdefault(key, set()).add(answer)
        question_keys = token_keys(self._question_ids(questions))
        return {q: by_tokens[k] for q, k in zip(questions, question_keys, strict=True) if k in by_tokens}

    @property
    def data_needs_model(self) -> bool:
        return self.config.task.hard_negatives == "model"

    def prepare_with_model(self, model: keras.Model) -> None:
        """`task.hard_negatives: model`: the bank ranked by the model as it starts training (`mining.py`)."""
        started = time.perf_counter()
        bank_vectors = self.embed_answers(model, self.bank)

        def cosines(questions: list[str]) -> np.ndarray:
            return self.embed_questions(model, questions) @ bank_vectors.T

        self._negative_scorer = cosines
        log.info(
            "hard negatives: mined with the model as it starts (%d bank answers embedded in %.1f s)",
            len(self.bank),
            time.perf_counter() - started,
        )

    def hard_negatives(self, frame: pd.DataFrame) -> list[str]:
        """One mined wrong answer per row of `frame` (`task.hard_negatives`; see `mining.py`)."""
        if self._negative_scorer is None:
            raise RuntimeError(
                f"task.hard_negatives {self.config.task.hard_negatives}: no ranker "
                "(prepare, and prepare_with_model for 'model', come first)"
            )
        questions, answers = frame["question"].tolist(), frame["answer"].tolist()
        # An augmented copy is never pushed away from an answer that is right for its original.
        originals = self.augmentation.originals if self.augmentation is not None else {}
        right = self._right_answers
        distinct = sorted(set(questions))
        echoes = self._echoes(distinct) if self.config.task.shared_towers else {}  # copies included
        excluded = {
            q: right.get(q, set()) | right.get(originals.get(q, q), set()) | echoes.get(q, set())
            for q in distinct
        }
        return mine_hard_negatives(
            questions,
            answers,
            self._negative_scorer,
            self.bank,
            excluded,
            ceiling=self.config.task.hard_negative_ceiling,
        )

    def _question_ids(self, questions: list[str]) -> tf.RaggedTensor:
        # Questions in the splits are cleaned already, exactly as a request will be.
        return self.tokenizer.tokenize(tf.constant(questions, dtype=tf.string))

    def _answer_ids(self, answers: list[str]) -> tf.RaggedTensor:
        # Answers are kept as displayed (not lower-cased): clean them as the
        # export's `embed_answers` signature does.
        tok = self.answer_tokenizer
        return tok.tokenize(tok.clean(tf.constant(answers, dtype=tf.string)))

    def _bank_ids(self, answers: list[str], bank: list[str]) -> np.ndarray:
        index = {answer: i for i, answer in enumerate(bank)}
        return np.asarray([index.get(a, -1) for a in answers], dtype=np.int32)

    # -- training ------------------------------------------------------------

    def dataset(self, frame: pd.DataFrame, *, training: bool) -> tf.data.Dataset:
        if training:
            frame = self.training_rows(frame)
        text = self.config.text
        questions, answers = frame["question"].tolist(), frame["answer"].tolist()
        features = {"question": self._question_ids(questions), "answer": self._answer_ids(answers)}
        targets = self._bank_ids(answers, self.bank)
        if self.config.task.hard_negatives != "none":
            negatives = self.hard_negatives(frame)
            if training and negatives:  # what the near-misses look like
                log.info(
                    "hard negatives (%s) for %d rows, e.g. %r -> %r",
                    self.config.task.hard_negatives,
                    len(negatives),
                    questions[0],
                    negatives[0][:120],
                )
            features["negative"] = self._answer_ids(negatives)
            targets = np.stack([targets, self._bank_ids(negatives, self.bank)], axis=1)
        return make_dataset(
            features,
            as_targets(targets),
            batch_size=self.config.train.batch_size,
            max_length=max(text.max_length, text.answer_max_length),
            shuffle=training,
            seed=self.config.train.seed,
        )

    def encoded_lengths(self) -> dict[str, int | None]:
        """Questions and answers go through the same kind of encoder."""
        return {**super().encoded_lengths(), "text.answer_max_length": self.config.text.answer_max_length}

    def _tower(self, name: str) -> keras.Model:
        token_ids, pooled = self.pooled_encoding()
        vector = keras.layers.UnitNormalization(name="unit_vector")(pooled)
        return keras.Model(token_ids, vector, name=name)

    def build_model(self) -> keras.Model:
        task = self.config.task
        question_tower = self._tower(QUESTION_TOWER)
        answer_tower = question_tower if task.shared_towers else self._tower(ANSWER_TOWER)
        inputs = {
            "question": keras.Input(shape=(None,), dtype="int32", name="question"),
            "answer": keras.Input(shape=(None,), dtype="int32", name="answer"),
        }
        answer_vectors = answer_tower(inputs["answer"])
        if task.hard_negatives != "none":  # the batch's answers, then its hard negatives: [2B, d]
            inputs["negative"] = keras.Input(shape=(None,), dtype="int32", name="negative")
            negatives = answer_tower(inputs["negative"])
            answer_vectors = keras.layers.Concatenate(axis=0, name="with_hard_negatives")(
                [answer_vectors, negatives]
            )
        logits = ScaledSimilarity(
            temperature=task.temperature,
            learn_temperature=task.learn_temperature,
            use_bias=task.loss == "sigmoid",
            dtype="float32",
            name="similarity",
        )(question_tower(inputs["question"]), answer_vectors)
        return keras.Model(inputs, logits, name="dual_encoder")

    def compile(self, model: keras.Model, *, jit_compile: bool) -> None:
        model.compile(
            optimizer=self.optimizer(model),
            loss=retrieval_loss(self.config.task.loss),
            metrics=[keras.metrics.MeanMetricWrapper(in_batch_accuracy, name="in_batch_accuracy")],
            jit_compile=jit_compile,
        )

    def towers(self, model: keras.Model) -> tuple[keras.Model, keras.Model]:
        """`(question_tower, answer_tower)` of a dual encoder (the same model when shared)."""
        question_tower = model.get_layer(QUESTION_TOWER)
        names = {layer.name for layer in model.layers}
        return question_tower, model.get_layer(ANSWER_TOWER) if ANSWER_TOWER in names else question_tower

    def _embed(self, tower: keras.Model, ids: tf.RaggedTensor, max_length: int) -> np.ndarray:
        if int(ids.nrows()) == 0:
            return np.zeros((0, int(tower.output.shape[-1])), dtype=np.float32)
        batches = ids_dataset(ids, batch_size=max(64, self.config.train.batch_size), max_length=max_length)
        return np.asarray(tower.predict(batches, verbose=0), dtype=np.float32)

    def embed_questions(self, model: keras.Model, questions: list[str]) -> np.ndarray:
        """Unit vectors `[n, d]` of cleaned questions."""
        return self._embed(self.towers(model)[0], self._question_ids(questions), self.config.text.max_length)

    def embed_answers(self, model: keras.Model, answers: list[str]) -> np.ndarray:
        """Unit vectors `[n, d]` of answers (as displayed)."""
        ids = self._answer_ids(answers)
        return self._embed(self.towers(model)[1], ids, self.config.text.answer_max_length)

    def projector_embeddings(self, model: keras.Model) -> dict[str, tuple[np.ndarray, list[str]]]:
        """Word embeddings, and the answer bank as the answer tower embeds it."""
        found = super().projector_embeddings(model)
        found["answers"] = (self.embed_answers(model, self.bank), list(self.bank))
        return found

    # -- evaluation ----------------------------------------------------------

    def bank_scores(
        self, model: keras.Model, frame: pd.DataFrame
    ) -> tuple[list[str], list[list[str]], list[str], np.ndarray]:
        """`(questions, references, bank, scores)`: the cosine `[question, answer]` of each distinct question.

        Answers of `frame` missing from the bank join it, so every reference can be found.
        An answer that repeats its question scores below any cosine, as in the export
        (`bank.mask_echoes`).
        """
        questions, references = group_references(frame["question"].tolist(), frame["answer"].tolist())
        bank = self.bank + sorted(set(frame["answer"]) - set(self.bank))
        scores = self.embed_questions(model, questions) @ self.embed_answers(model, bank).T
        return questions, references, bank, mask_echoes(scores)

    def rank(self, model: keras.Model, frame: pd.DataFrame) -> tuple[list[str], list[list[str]], Scored]:
        """`(questions, references, scored)` per distinct question of `frame`, ranked against the bank."""
        questions, references, bank, scores = self.bank_scores(model, frame)
        return questions, references, rank_candidates(scores, bank, references)

    def evaluate(self, model: keras.Model, frame: pd.DataFrame) -> tuple[dict[str, float], pd.DataFrame]:
        """Per distinct question: a hit on any of its rows' answers counts; the fallback is measured apart."""
        questions, references, scored = self.rank(model, frame)
        metrics: dict[str, Any] = ranking_metrics(scored.rank)
        metrics["accuracy"] = metrics["recall_at_1"]
        answered = (
            scored.score >= self.threshold if self.threshold is not None else np.ones(len(questions), bool)
        )
        metrics["threshold"] = float(self.threshold) if self.threshold is not None else None
        metrics.update(selective_metrics(scored.score, scored.correct, answered))
        metrics["num_questions"] = len(questions)
        return metrics, predictions_frame(questions, references, scored)

    def epoch_metrics(self, model: keras.Model, frame: pd.DataFrame) -> dict[str, float]:
        """`mrr` and `recall_at_1` of `frame`'s questions ranked against the whole bank (`train.monitor: val_mrr`).

        The in-batch accuracy that Keras reports ranks a question among a
        batch's answers only; what the export does is rank the bank.
        """
        _, _, scored = self.rank(model, frame)
        metrics = ranking_metrics(scored.rank)
        return {"mrr": metrics["mrr"], "recall_at_1": metrics["recall_at_1"]}

    def remember_start(self, model: keras.Model) -> None:
        if self.config.task.weight_averaging < 1:
            self._start_weights = {v.path: v.numpy() for v in model.weights}

    def average_with_start(self, model: keras.Model) -> None:
        """Every weight becomes `a` × its trained value + (1 − `a`) × its starting value.

        `a` is `task.weight_averaging`. Weights are matched by path, which a model
        read back from its file keeps (a multi-worker run's chief reads it back
        before `finalize`); frozen weights did not move and stay exactly as
        they were.
        """
        share = self.config.task.weight_averaging
        if share >= 1:
            return
        if self._start_weights is None:
            raise RuntimeError("remember_start was not called before training")  # a bug, not a user error
        average_weights(model, self._start_weights, share)
        log.info(
            "weights averaged: %.2f × fine-tuned + %.2f × starting (task.weight_averaging)", share, 1 - share
        )

    def finalize(self, model: keras.Model, splits: Splits) -> None:
        """Averages the weights with the starting ones, then sets the fallback threshold.

        The averaging (`average_with_start`) happens only with
        `task.weight_averaging` below 1. The threshold is `task.threshold`, or
        calibrated on the validation split: that needs
        `task.threshold_min_questions` validation questions and must raise the
        accuracy of the answered ones there (`tasks/retrieval/bank.py`, `fallback_threshold`);
        otherwise none is applied and the log says why. With
        `task.decline_keep`, the off-topic threshold of the same validation
        scores (`conformal_threshold`) is used where it is higher.
        """
        self.average_with_start(model)
        task = self.config.task
        ignored = (
            "" if task.decline_keep is None else " (task.decline_keep applies to a calibrated threshold only)"
        )
        if task.fallback_answer is None:
            self.threshold, reason = None, "task.fallback_answer is null" + ignored
        elif task.threshold is not None:
            self.threshold, reason = float(task.threshold), "set by task.threshold" + ignored
        else:
            # Per distinct question, as the test metrics are.
            _, _, scored = self.rank(model, splits.validation)
            top, correct = scored.score, scored.correct
            self.threshold, reason = fallback_threshold(
                top, correct, keep=task.threshold_keep, min_questions=task.threshold_min_questions
            )
            if task.decline_keep is not None:
                self.threshold, reason = _with_off_topic_threshold(
                    self.threshold, reason, top, task.decline_keep
                )
            self.calibration = {
                "validation_questions": len(top),
                "validation_recall_at_1": float(correct.mean()) if len(top) else 0.0,
                "validation_answered_fraction": float((top >= self.threshold).mean())
                if self.threshold is not None
                else 1.0,
            }
        self.calibration["reason"] = reason
        if self.threshold is None:
            log.info("no fallback threshold, every question is answered: %s", reason)
        else:
            log.info("fallback threshold (cosine similarity) %.4f: %s", self.threshold, reason)

    def baseline(self, splits: Splits) -> dict[str, float]:
        return tfidf_retrieval(
            splits.train["question"].tolist(),
            splits.train["answer"].tolist(),
            splits.test["question"].tolist(),
            splits.test["answer"].tolist(),
            self.bank,
        )

    def predict(self, model: keras.Model, questions: list[str], top_k: int) -> dict[str, np.ndarray]:
        return _answers(self.serving_bundle(model, top_k), questions)

    def export_reference(
        self, model: keras.Model, bundle: ServingBundle, questions: list[str], top_k: int
    ) -> dict[str, np.ndarray]:
        # The exported bundle's bank: embedding every answer again took a third of an export.
        del model, top_k
        return _answers(bundle, questions)

    # -- serving -------------------------------------------------------------

    def serving_bundle(self, model: keras.Model, top_k: int) -> ServingBundle:
        question_tower, answer_tower = self.towers(model)
        known_questions = [q for q, _ in self.known]
        bank = AnswerBank(
            self.bank,
            self.embed_answers(model, self.bank),
            known_questions,
            self.embed_questions(model, known_questions),
            self._bank_ids([a for _, a in self.known], self.bank),
        )
        tokenizer, answer_tokenizer = self.tokenizer, self.answer_tokenizer
        threshold, fallback = self.threshold, self.config.task.fallback_answer

        def serve(question: tf.Tensor) -> dict[str, tf.Tensor]:
            vectors = question_tower(tokenizer(question), training=False)
            return search(vectors, bank, top_k, threshold, fallback)

        def embed_questions(text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"embedding": question_tower(tokenizer(text), training=False)}

        def embed_answers(text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"embedding": answer_tower(answer_tokenizer(text), training=False)}

        return ServingBundle(
            serve,
            [model, tokenizer, answer_tokenizer, bank],
            endpoints={"embed_questions": embed_questions, "embed_answers": embed_answers},
            variables={BANK_COLLECTION: bank.collection()},
        )

    def serving_function(self, model: keras.Model, top_k: int) -> tuple[Any, list[Any]]:
        bundle = self.serving_bundle(model, top_k)
        return bundle.serve, bundle.trackables

    # -- persistence ---------------------------------------------------------

    def save(self, directory: Path) -> None:
        self.tokenizer.save_assets(directory / PREPROCESSOR_DIR)
        write_text(directory / ANSWERS_FILE, json.dumps(self.bank, ensure_ascii=False, indent=0))
        known = pd.DataFrame(self.known, columns=["question", "answer"])
        with replacing(directory / KNOWN_QUESTIONS_FILE) as tmp:
            known.to_json(tmp, orient="records", lines=True, force_ascii=False)
        write_text(
            directory / RETRIEVAL_FILE,
            json.dumps({"threshold": self.threshold, **self.calibration}, indent=2),
        )

    def restore(self, directory: Path) -> None:
        self.tokenizer = load_tokenizer(directory / PREPROCESSOR_DIR)
        self.answer_tokenizer = with_max_length(self.tokenizer, self.config.text.answer_max_length)
        self.bank = json.loads((directory / ANSWERS_FILE).read_text(encoding="utf-8"))
        known = pd.read_json(directory / KNOWN_QUESTIONS_FILE, lines=True, dtype=False)
        self.known = (
            list(zip(known["question"].astype(str), known["answer"].astype(str), strict=True))
            if len(known)
            else []
        )
        state = json.loads((directory / RETRIEVAL_FILE).read_text(encoding="utf-8"))
        self.threshold = state.pop("threshold")
        self.calibration = state


def average_weights(model: keras.Model, start: dict[str, np.ndarray], share: float) -> None:
    """Sets each weight of `model` to `share` × its value + (1 − `share`) × `start[its path]`.

    Weights that equal their start (frozen ones) and non-float ones are left
    exactly as they are.
    """
    for variable in model.weights:
        trained, first = variable.numpy(), start[variable.path]
        if np.issubdtype(trained.dtype, np.floating) and not np.array_equal(trained, first):
            variable.assign(share * trained + (1 - share) * first)


def check_not_averaged(config: Config, run: str | Path) -> None:
    """Refuses a run whose saved weights `finalize` already averaged (`task.weight_averaging` below 1).

    For scripts that average a finished run's weights themselves: on such a run
    they would average twice and measure another share than they report.
    """
    share = config.task.weight_averaging
    if share < 1:
        raise UserError(
            f"'{run}' was trained with task.weight_averaging {share}, so its saved weights are already "
            "averaged with the preset's; expected a run trained with --set task.weight_averaging=1"
        )


def _answers(bundle: ServingBundle, questions: list[str]) -> dict[str, np.ndarray]:
    # Traced as the export traces it: eager arithmetic can differ in the
    # last bit and flip near-tied answers (e.g. of an untrained model).
    outputs = tf.function(bundle.serve)(tf.constant(questions, dtype=tf.string))
    return {k: v.numpy() for k, v in outputs.items()}


def _with_off_topic_threshold(
    threshold: float | None, reason: str, scores: np.ndarray, keep: float
) -> tuple[float | None, str]:
    """The higher of `threshold` and the off-topic threshold that answers `keep` of in-domain requests."""
    choice = conformal_threshold(scores, keep)
    if choice.threshold is None:
        needed = questions_needed(keep)
        why = (
            "answers every request"
            if needed is None
            else f"{choice.questions} validation questions cannot promise that share (at least {needed} needed)"
        )
        return threshold, f"{reason}; task.decline_keep {keep}: {why}"
    if threshold is not None and threshold >= choice.threshold:
        return (
            threshold,
            f"{reason}; above the off-topic threshold {choice.threshold:.4f} (task.decline_keep)",
        )
    return choice.threshold, (
        f"falls back on off-topic requests: below the {_ordinal(choice.rank)}lowest of the {choice.questions} validation "
        f"questions' scores, at least {choice.guaranteed_keep:.1%} of in-domain requests answered "
        f"(task.decline_keep {keep}); the right-or-wrong calibration: {reason}"
    )


def _ordinal(rank: int) -> str:
    """The rank before "lowest" in the fallback's reason: nothing for the lowest itself.

    >>> [_ordinal(rank) for rank in (1, 2, 3, 5, 11, 22)]
    ['', '2nd ', '3rd ', '5th ', '11th ', '22nd ']
    """
    if rank == 1:
        return ""
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix} "
