"""Word2Vec: skip-gram with negative sampling, trained in Keras on the user's own text.

A word's vector is trained to predict the words around it (Mikolov et al.,
2013): for every (word, context word) pair inside a window, the dot product
of the word's vector and the context word's output vector should be high,
and low for `negatives` words drawn from the unigram distribution raised to
the 3/4 power. As in the original tool, the window shrinks at random (so
near words count more) and very frequent words are randomly dropped
(`subsample`), with fresh draws every epoch. The word vectors (not the
context vectors) are the result, written in the word2vec text format that
`embedding.pretrained`, `augment.vectors` and `qa-assistant neighbours` read.

Text goes through the same cleaning and word split as the word-level
tokenizer, so the vectors' words are the words a model's vocabulary holds.

Example:

>>> words, vectors = train_word2vec(["the cat sat", "the dog sat"] * 50, Word2VecConfig(dim=8, min_count=1))
>>> vectors.shape
(4, 8)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from qa_assistant.config import TextConfig
from qa_assistant.data.prepare import clean_strings
from qa_assistant.data.sources import load_pairs
from qa_assistant.errors import UserError
from qa_assistant.text.word_tokenizer import ranked_words, split_words

log = logging.getLogger(__name__)


@dataclass
class Word2VecConfig:
    """Word2Vec training settings.

    Args:
        dim: vector size.
        window: largest distance between a word and a context word.
        negatives: negative samples per (word, context) pair.
        min_count: words seen fewer times are left out.
        max_words: vocabulary cap (most frequent words).
        subsample: frequent-word dropping threshold (0 = off).
        epochs: passes over the text.
        batch_size: pairs per step.
        learning_rate: Adam learning rate.
        seed: seeds pairs, negatives and weights.
    """

    dim: int = 100
    window: int = 4
    negatives: int = 5
    min_count: int = 2
    max_words: int = 50000
    subsample: float = 1e-3
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.005
    seed: int = 0

    def check(self) -> None:
        """Raises `UserError` for values that cannot train."""
        for name in ("dim", "window", "negatives", "min_count", "max_words", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"word2vec {name} must be at least 1; got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.subsample < 0:
            raise UserError("word2vec learning_rate must be > 0 and subsample >= 0")


def tokenize_texts(texts: list[str], text: TextConfig | None = None) -> list[list[str]]:
    """Cleans texts like the word tokenizer (lower-cased by default) and splits them into words."""
    cleaned = clean_strings(texts, text or TextConfig())
    if not cleaned:
        return []
    return [[w.decode("utf-8") for w in row] for row in split_words(tf.constant(cleaned)).to_list()]


def train_word2vec(texts: list[str], config: Word2VecConfig | None = None) -> tuple[list[str], np.ndarray]:
    """Trains skip-gram word vectors on `texts`.

    Args:
        texts: raw texts (sentences, questions, answers).
        config: training settings.

    Returns:
        `(words, vectors [len(words), dim])`, most frequent word first.

    Raises:
        UserError: too little text to train on.
    """
    config = config or Word2VecConfig()
    config.check()
    sentences = tokenize_texts(texts)
    words = ranked_words([" ".join(s) for s in sentences], min_count=config.min_count)[: config.max_words]
    if len(words) < 2:
        raise UserError(
            f"the text has {len(words)} words seen at least {config.min_count} times; "
            "expected at least 2 (give more text or lower --min-count)"
        )
    index = {w: i for i, w in enumerate(words)}
    encoded = [np.asarray([index[w] for w in s if w in index], dtype=np.int32) for s in sentences]
    encoded = [s for s in encoded if len(s) > 1]
    counts = np.bincount(np.concatenate(encoded), minlength=len(words)).astype(np.float64)
    keras.utils.set_random_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = _skipgram_model(len(words), config)
    noise = counts**0.75 / (counts**0.75).sum()
    log.info("word2vec: %d words, %d sentences, %d tokens", len(words), len(encoded), int(counts.sum()))
    for epoch in range(config.epochs):
        targets, contexts = skipgram_pairs(encoded, counts, config, rng)
        if len(targets) == 0:
            raise UserError("word2vec found no word pairs in the text; expected sentences of 2+ words")
        negatives = rng.choice(len(words), size=(len(targets), config.negatives), p=noise)
        candidates = np.concatenate([contexts[:, None], negatives], axis=1).astype(np.int32)
        labels = np.zeros(candidates.shape, dtype=np.float32)
        labels[:, 0] = 1.0
        history = model.fit(
            (targets, candidates), labels, batch_size=config.batch_size, epochs=1, shuffle=True, verbose=0
        )
        log.info(
            "word2vec epoch %d/%d: %d pairs, loss %.4f",
            epoch + 1,
            config.epochs,
            len(targets),
            history.history["loss"][-1],
        )
    vectors = np.asarray(model.get_layer("word_vectors").embeddings.numpy(), dtype=np.float32)
    return words, vectors


def skipgram_pairs(
    sentences: list[np.ndarray], counts: np.ndarray, config: Word2VecConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(word, context) id pairs of one epoch: subsampled words, windows shrunk at random.

    Returns:
        `(targets [pairs], contexts [pairs])`.
    """
    frequency = counts / counts.sum()
    if config.subsample > 0:
        ratio = config.subsample / np.maximum(frequency, 1e-12)
        keep_probability = np.minimum(1.0, np.sqrt(ratio) + ratio)
    else:
        keep_probability = np.ones_like(frequency)
    targets: list[np.ndarray] = []
    contexts: list[np.ndarray] = []
    for sentence in sentences:
        kept = sentence[rng.random(len(sentence)) < keep_probability[sentence]]
        n = len(kept)
        if n < 2:
            continue
        reach = rng.integers(1, config.window + 1, size=n)
        for offset in range(1, config.window + 1):
            near = np.arange(n - offset)
            # position i sees i + offset if its window reaches that far, and i + offset sees i likewise
            right = near[reach[near] >= offset]
            left = near[reach[near + offset] >= offset]
            targets += [kept[right], kept[left + offset]]
            contexts += [kept[right + offset], kept[left]]
    if not targets:
        return np.zeros(0, np.int32), np.zeros(0, np.int32)
    return np.concatenate(targets).astype(np.int32), np.concatenate(contexts).astype(np.int32)


def _skipgram_model(vocabulary: int, config: Word2VecConfig) -> keras.Model:
    """Word ids `[B]` and candidate context ids `[B, 1 + negatives]` -> logits `[B, 1 + negatives]`."""
    target = keras.Input(shape=(), dtype="int32", name="word")
    candidates = keras.Input(shape=(config.negatives + 1,), dtype="int32", name="contexts")
    scale = 0.5 / config.dim
    word = keras.layers.Embedding(
        vocabulary,
        config.dim,
        embeddings_initializer=keras.initializers.RandomUniform(-scale, scale, seed=config.seed),
        name="word_vectors",
    )(target)
    context = keras.layers.Embedding(
        vocabulary, config.dim, embeddings_initializer="zeros", name="context_vectors"
    )(candidates)
    logits = keras.ops.einsum("bd,bkd->bk", word, context)
    model = keras.Model((target, candidates), logits, name="skipgram")
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return model


def read_text_corpus(
    spec: str, *, question_column: str = "question", answer_column: str = "answer"
) -> list[str]:
    """The texts of a corpus file: every line of a `.txt` file; questions and answers of a Q/A source.

    Raises:
        UserError: unreadable file or missing columns.
    """
    path = Path(spec)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise UserError(f"text file '{path}' does not exist; expected a .txt file or a Q/A file")
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        return [line for line in lines if line.strip()]
    frame, _ = load_pairs(spec, question_column=question_column, answer_column=answer_column)
    texts = [*frame["question"].tolist(), *frame["answer"].tolist()]
    return [t for t in texts if t.strip()]
