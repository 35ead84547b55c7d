"""Retrievers that ground a language model's answers in the user's own answers, as graph code.

A grounded prompt carries the `k` answers of the user's data that best match
the request (`tasks/lm/prompt.py` writes them as notes). The retrievers run
inside the exported SavedModel, which loads with TensorFlow and
tensorflow-text alone, so each is a `tf.Module` whose state lives in
`tf.Variable`s and lookup tables and whose `retrieve` is plain TensorFlow ops,
traceable with or without autograph.

Both share one output convention (`Retriever.retrieve`): `[batch, k]` answers
and `float32` scores, best first, `k` distinct answers per row; when fewer
than `k` answers exist, the missing places hold `""` and `MISSING_SCORE`
(-inf, below every real score).

* `TfidfRetriever` is the TF-IDF nearest-question baseline of
  `metrics/baselines.py` (`tfidf_nearest_answers`) rewritten in TensorFlow:
  an answer's score is the best cosine similarity between the request and
  one of its training questions.
* `DualEncoderRetriever` searches answers with a trained retrieval run's own
  question tower, tokenizer and answer-bank search (`tasks/retrieval/`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from qa_assistant.tasks.retrieval.bank import AnswerBank, search
from qa_assistant.tasks.retrieval.task import RetrievalTask

# The score of a place that holds no answer (`""`): below any real score, so
# scores stay in decreasing order along a row.
MISSING_SCORE = float("-inf")

# Python's `\w` for `str` patterns (what scikit-learn's token pattern
# `(?u)\b\w+\b` matches in runs) is "alphanumeric or underscore"; in RE2
# that is letters, numbers and `_`. Marks are not word characters in either.
_NON_WORD = r"[^\p{L}\p{N}_]+"
# `tf.strings.lower` stops at a NUL byte (a C string inside); control
# characters are never word characters, so making them spaces first changes
# no token.
_CONTROL = r"\p{Cc}"
# `TfidfVectorizer(ngram_range=(1, 2))`: unigrams and space-joined bigrams.
NGRAM_WIDTHS = (1, 2)
# `ln(count)` of a request's term counts up to here comes from a table that NumPy
# computed: TensorFlow's `log` differs from NumPy's in the last bit for about one
# integer in five (3, 7, 9, ...), enough to flip a tie that scikit-learn breaks.
LOG_TABLE_SIZE = 1024


class Retriever(tf.Module):
    """What a grounded prompt asks of a retriever: the best `k` answers of the user's data."""

    def retrieve(self, questions: tf.Tensor, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """The `k` best answers for each request.

        Args:
            questions: `tf.string [batch]` raw requests.
            k: answers per request (a Python int or a scalar int32 tensor, >= 0).

        Returns:
            `(answers, scores)`: `tf.string [batch, k]` distinct answers, best
            first, and their `tf.float32 [batch, k]` scores. When the retriever
            holds fewer than `k` answers, the last places are `""` with score
            `MISSING_SCORE` (-inf).
        """
        raise NotImplementedError


def pad_to_k(answers: tf.Tensor, scores: tf.Tensor, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Pads `[batch, found]` answers and scores (`found <= k`) to `k` columns with `""` / `MISSING_SCORE`.

    Args:
        answers: `tf.string [batch, found]`.
        scores: `[batch, found]` scores (cast to float32).
        k: the width wanted.

    Returns:
        `(answers, scores)` of width `k`.
    """
    missing = tf.maximum(tf.cast(k, tf.int32) - tf.shape(answers)[1], 0)
    answers = tf.pad(answers, [[0, 0], [0, missing]], constant_values="")
    scores = tf.pad(tf.cast(scores, tf.float32), [[0, 0], [0, missing]], constant_values=MISSING_SCORE)
    if isinstance(k, int):
        answers = tf.ensure_shape(answers, [None, k])
        scores = tf.ensure_shape(scores, [None, k])
    return answers, scores


def _check_k(k: int | tf.Tensor) -> None:
    if isinstance(k, int) and k < 0:
        raise ValueError(f"k must be >= 0; got {k}")


def tfidf_terms(texts: tf.Tensor) -> tf.RaggedTensor:
    """`[batch, (terms)]` the word unigrams and bigrams scikit-learn's TF-IDF baseline counts.

    As `TfidfVectorizer(lowercase=True, token_pattern=r"(?u)\\b\\w+\\b",
    ngram_range=(1, 2))`: lower-cased (Unicode-aware), words are runs of
    letters, numbers and `_`, bigrams are two neighbouring words joined by a
    space. Invalid UTF-8 becomes U+FFFD first (not a word character), so any
    bytes are safe.

    Args:
        texts: `tf.string [batch]`.

    Returns:
        A `tf.string` ragged tensor, unigrams then bigrams of each row.
    """
    x = tf.strings.unicode_transcode(
        texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD, replace_control_characters=False
    )
    x = tf.strings.regex_replace(x, _CONTROL, " ")
    # Lower-case before splitting, as scikit-learn does: lower-casing may
    # produce a combining mark (İ -> i + U+0307), which splits a word.
    x = tf.strings.lower(x, encoding="utf-8")
    words = tf.strings.split(tf.strings.strip(tf.strings.regex_replace(x, _NON_WORD, " ")))
    return tf.strings.ngrams(words, ngram_width=NGRAM_WIDTHS, separator=" ")


def _first_appearance(values: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """`(distinct values in order of first appearance, index of each value among them)`."""
    index: dict[str, int] = {}
    ids = np.asarray([index.setdefault(v, len(index)) for v in values], dtype=np.int32)
    return list(index), ids


def _fit_tfidf(questions: Sequence[str]) -> dict[str, np.ndarray]:
    """The training questions' TF-IDF matrix as scikit-learn's baseline computes it, term-major.

    Sublinear term frequency `1 + ln(count)`, smoothed idf
    `ln((1 + n) / (1 + df)) + 1`, rows L2-normalised, all in float64 and in
    scikit-learn's order of operations, so that the values are the same to
    the last bit (a tie it breaks by rounding is broken the same way).

    Returns:
        `vocabulary [v]` (sorted), `idf [v]`, and the nonzero entries sorted
        by term: `splits [v + 1]` (entries of term `t` are
        `splits[t]:splits[t + 1]`), `rows [nnz]` (question index) and
        `values [nnz]`.
    """
    terms = tfidf_terms(tf.constant(list(questions), dtype=tf.string))
    flat = terms.flat_values.numpy()
    # A lookup table cannot be empty: without any term, "" (never a term) stands in.
    vocabulary, first, term_ids = np.unique(
        flat if len(flat) else [b""], return_index=True, return_inverse=True
    )
    size, n = len(vocabulary), len(questions)
    # scikit-learn sums a row's squares in the order the terms first appear in the corpus.
    by_appearance = np.argsort(first, kind="stable")
    rank = np.empty(size, np.int64)
    rank[by_appearance] = np.arange(size)
    keys = terms.value_rowids().numpy().astype(np.int64) * size + rank[term_ids[: len(flat)]]
    keys, counts = np.unique(keys, return_counts=True)  # by row, then first appearance
    rows, term_ids = keys // size, by_appearance[keys % size]
    idf = np.log((1.0 + n) / (1.0 + np.bincount(term_ids, minlength=size))) + 1.0
    values = (1.0 + np.log(counts.astype(np.float64))) * idf[term_ids]
    values /= np.sqrt(np.bincount(rows, weights=values**2, minlength=n))[rows]
    order = np.argsort(term_ids, kind="stable")
    splits = np.concatenate([[0], np.cumsum(np.bincount(term_ids, minlength=size))])
    return {
        "vocabulary": vocabulary,
        "idf": idf,
        "splits": splits.astype(np.int64),
        "rows": rows[order].astype(np.int32),
        "values": values[order],
    }


def _constant_variable(value: Any, dtype: tf.DType, name: str) -> tf.Variable:
    return tf.Variable(tf.constant(value, dtype=dtype), trainable=False, name=name)


class TfidfRetriever(Retriever):
    """The TF-IDF nearest-question baseline (`metrics.baselines.tfidf_nearest_answers`) as graph code.

    An answer's score is the best cosine similarity between the TF-IDF
    vector of the request and those of the training questions that lead to
    it; the vectorizer's settings are the baseline's (see `tfidf_terms` and
    `_fit_tfidf`), fitted on `questions`. The top-1 answer is therefore the
    baseline's prediction.

    Ties (equal scores) go to the answer whose best-scoring training
    question comes first in `questions`, as the baseline's `argmax` does. A
    request with no known term (empty, all punctuation, unseen words) scores
    0 everywhere: it gets the answers in their order of first appearance in
    `answers`.

    On CPU the scores are scikit-learn's to the last bit (same float64
    operations in the same order). On a GPU `scatter_nd` adds in any order,
    so a tie that scikit-learn breaks by rounding may break either way.

    The matrix is held sparse, term-major (a posting list per term): memory
    and request cost grow with the number of nonzero entries, not with
    questions times vocabulary.

    Args:
        questions: training questions (as the model sees them: cleaned).
        answers: the answer of each question.
        clean: a graph function applied to the requests before their terms
            are counted, e.g. the cleaning that made `questions`; `None`
            takes them as they are (only repaired and lower-cased).
        name: the module's name.

    Raises:
        ValueError: no pairs, or lists of different lengths.
    """

    def __init__(
        self,
        questions: Sequence[str],
        answers: Sequence[str],
        *,
        clean: Callable[[tf.Tensor], tf.Tensor] | None = None,
        name: str = "tfidf_retriever",
    ):
        super().__init__(name=name)
        if len(questions) != len(answers):
            raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
        if not questions:
            raise ValueError("a TF-IDF retriever needs at least one question/answer pair")
        distinct, answer_ids = _first_appearance(list(answers))
        self.clean = clean
        fitted = _fit_tfidf(questions)
        vocabulary = fitted["vocabulary"]
        self.num_questions, self.vocabulary_size = len(questions), len(vocabulary)
        self.vocabulary = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocabulary.tolist(), dtype=tf.string),
                tf.range(len(vocabulary), dtype=tf.int64),
            ),
            default_value=-1,
        )
        self.idf = _constant_variable(fitted["idf"], tf.float64, "idf")
        self.log_table = _constant_variable(
            np.log(np.arange(1, LOG_TABLE_SIZE + 1, dtype=np.float64)), tf.float64, "log_table"
        )
        self.posting_splits = _constant_variable(fitted["splits"], tf.int64, "posting_splits")
        self.posting_rows = _constant_variable(fitted["rows"], tf.int32, "posting_rows")
        self.posting_values = _constant_variable(fitted["values"], tf.float64, "posting_values")
        self.answers = _constant_variable(distinct, tf.string, "answers")
        self.answer_ids = _constant_variable(answer_ids, tf.int32, "answer_ids")

    def _request_vectors(self, questions: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The requests' L2-normalised TF-IDF entries: `(row, term, weight)` per distinct known term."""
        terms = tfidf_terms(questions if self.clean is None else self.clean(questions))
        term_ids = self.vocabulary.lookup(terms.flat_values)
        known = term_ids >= 0  # unseen terms have no idf: scikit-learn drops them too
        size = tf.constant(self.vocabulary_size, tf.int64)
        keys = tf.boolean_mask(terms.value_rowids(), known) * size + tf.boolean_mask(term_ids, known)
        # Sorted by row, then term: scikit-learn's order of summation in the norms and dot products.
        distinct, slot = tf.unique(tf.sort(keys))
        counts = tf.math.unsorted_segment_sum(tf.ones_like(keys, tf.float64), slot, tf.size(distinct))
        rows, term_ids = distinct // size, distinct % size
        weights = (1.0 + self._log(counts)) * tf.gather(self.idf, term_ids)
        squares = tf.math.unsorted_segment_sum(weights * weights, rows, tf.shape(questions, tf.int64)[0])
        return rows, term_ids, weights / tf.sqrt(tf.gather(squares, rows))

    def _log(self, counts: tf.Tensor) -> tf.Tensor:
        """`ln` of counts >= 1: NumPy's value from the table, TensorFlow's beyond it."""
        index = tf.cast(counts, tf.int64) - 1
        table = tf.gather(self.log_table, tf.minimum(index, LOG_TABLE_SIZE - 1))
        return tf.where(index < LOG_TABLE_SIZE, table, tf.math.log(counts))

    def similarity(self, questions: tf.Tensor) -> tf.Tensor:
        """`float64 [batch, num_questions]` cosine similarity of each request with each training question."""
        rows, term_ids, weights = self._request_vectors(questions)
        postings = tf.ragged.range(
            tf.gather(self.posting_splits, term_ids), tf.gather(self.posting_splits, term_ids + 1)
        )
        entry, owner = postings.flat_values, postings.value_rowids()
        products = tf.gather(weights, owner) * tf.gather(self.posting_values, entry)
        where = tf.stack([tf.gather(rows, owner), tf.cast(tf.gather(self.posting_rows, entry), tf.int64)], 1)
        shape = tf.stack([tf.shape(questions, tf.int64)[0], tf.constant(self.num_questions, tf.int64)])
        return tf.scatter_nd(where, products, shape)  # duplicate places are summed

    def retrieve(self, questions: tf.Tensor, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """See `Retriever.retrieve`; scores are cosine similarities in [0, 1]."""
        _check_k(k)
        questions = tf.reshape(tf.convert_to_tensor(questions, tf.string), [-1])
        per_row = tf.transpose(self.similarity(questions))  # [num_questions, batch]
        count = tf.shape(self.answers)[0]
        best = tf.math.unsorted_segment_max(per_row, self.answer_ids, count)  # [answers, batch]
        # The first training question reaching its answer's best score breaks ties, as argmax does.
        row = tf.range(self.num_questions, dtype=tf.int32)[:, None]
        at_best = tf.equal(per_row, tf.gather(best, self.answer_ids))
        first = tf.math.unsorted_segment_min(
            tf.where(at_best, row, self.num_questions), self.answer_ids, count
        )
        # Answers in tie-break order; `top_k` keeps the lower index first among equal values.
        order = tf.argsort(tf.transpose(first), axis=1, stable=True)
        scores = tf.gather(tf.transpose(best), order, batch_dims=1)
        top = tf.math.top_k(scores, k=tf.minimum(tf.cast(k, tf.int32), count))
        chosen = tf.gather(order, top.indices, batch_dims=1)
        return pad_to_k(tf.gather(self.answers, chosen), top.values, k)


class DualEncoderRetriever(Retriever):
    """Answers ranked by a trained retrieval run's dual encoder, as its own export ranks them.

    Reuses the run's pieces: its tokenizer (with the run's cleaning), its
    question tower, its answers embedded by its answer tower into an
    `AnswerBank`, and the bank's `search`. The fallback threshold is not
    applied: a grounding note is an answer of the data, never the fallback.

    Args:
        task: the run's restored `RetrievalTask` (as `tasks.runs.load_run` gives it).
        model: its trained dual encoder.
        answers: the answers to search (each kept once, in order of first
            appearance); `None`: the run's answer bank and known questions.
        questions: the question of each of `answers` (question/answer pairs),
            held as the bank's known questions, as a retrieval export holds
            them; they do not change the ranking. `None`: no known questions.
        name: the module's name.

    Raises:
        ValueError: `task` is not a retrieval task, there are no answers, or
            `questions` and `answers` do not pair up.
    """

    def __init__(
        self,
        task: RetrievalTask,
        model: keras.Model,
        answers: Sequence[str] | None = None,
        questions: Sequence[str] | None = None,
        *,
        name: str = "dual_encoder_retriever",
    ):
        super().__init__(name=name)
        if not isinstance(task, RetrievalTask):
            raise ValueError(f"a dual-encoder retriever needs a retrieval run; got task '{task.name}'")
        if answers is None and questions is not None:
            raise ValueError("questions need their answers")
        if questions is not None and len(questions) != len(answers):
            raise ValueError(f"{len(questions)} questions but {len(answers)} answers")
        if answers is None:  # exactly the bank of the run's own export
            distinct, pairs = list(task.bank), list(task.known)
        else:
            distinct = _first_appearance(list(answers))[0]
            pairs = list(zip(questions, answers, strict=True)) if questions is not None else []
        self.model = model  # tracked: the question tower's weights live in it
        self.question_tower = task.towers(model)[0]
        self.tokenizer = task.tokenizer
        self.bank = _answer_bank(task, model, distinct, pairs)

    def retrieve(self, questions: tf.Tensor, k: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """See `Retriever.retrieve`; scores are cosine similarities in [-1, 1]."""
        _check_k(k)
        questions = tf.reshape(tf.convert_to_tensor(questions, tf.string), [-1])
        vectors = self.question_tower(self.tokenizer(questions), training=False)
        found = search(vectors, self.bank, tf.cast(k, tf.int32), None, None)
        return pad_to_k(found["top_k_answers"], found["top_k_scores"], k)


def _answer_bank(
    task: RetrievalTask, model: keras.Model, answers: list[str], pairs: list[tuple[str, str]]
) -> AnswerBank:
    """Distinct `answers` embedded by the run's answer tower; `(question, answer)` pairs as known questions."""
    if not answers:
        raise ValueError("a dual-encoder retriever needs at least one answer")
    index = {answer: i for i, answer in enumerate(answers)}
    questions = [q for q, _ in pairs]
    return AnswerBank(
        answers,
        task.embed_answers(model, answers),
        questions,
        task.embed_questions(model, questions),
        [index[a] for _, a in pairs],
    )
