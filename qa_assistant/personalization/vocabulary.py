"""Initial rows for the words a personalised vocabulary adds to a trained embedding.

A base model's embedding rows are trained; a new word's row has to start
somewhere that does not disturb them:

* if a word-vector file (word2vec/GloVe text, `embedding.pretrained`) has the
  word, its vector is carried into the base embedding's space by a linear
  map fitted (ridge regression) on the words both know. A vector file is
  another space (other axes, scale, maybe size): copying its numbers
  verbatim would put the new word at a random place among the trained rows;
* otherwise the row is the mean of the base rows plus Gaussian noise of
  `noise` standard deviations of the base rows: a neutral, "average word"
  start that training moves.

Example:

>>> import numpy as np
>>> base = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
>>> fill = new_row_fill(base, ["", "[UNK]", "a", "b", "c", "d", "new"], noise=0.0)
>>> merged = np.vstack([base, np.zeros((1, 4), "float32")])
>>> np.allclose(fill(np.arange(7) == 6, merged)[6], base[2:].mean(axis=0))
True
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qa_assistant.embeddings.vectors import load_vectors
from qa_assistant.personalization.transfer import Fill, Remap, index_map

log = logging.getLogger(__name__)

EMBEDDING_SUFFIX = "token_embedding/embeddings"  # the token embedding's variable path ends so
MIN_SHARED_WORDS = 10  # fewer shared words than this cannot fit a map between the spaces
_FIRST_WORD = 2  # rows 0 (padding) and 1 (unknown word) are not words


def new_row_fill(
    base: np.ndarray,
    vocabulary: Sequence[str],
    *,
    vectors_file: str | Path | None = None,
    noise: float = 0.1,
    seed: int = 0,
) -> Fill:
    """A `Remap.fill` for a token embedding whose first `len(base)` rows are the base's.

    Args:
        base: the base model's embedding `[base words, dim]`.
        vocabulary: the new vocabulary (base words first, at their ids).
        vectors_file: optional word2vec/GloVe text file.
        noise: standard deviations (of the base rows) of the noise added
            to the mean row.
        seed: seeds the noise.

    Returns:
        `fill(new_mask, merged) -> merged` with the new rows set.
    """
    known = np.asarray(base[_FIRST_WORD:] if len(base) > _FIRST_WORD else base, dtype=np.float64)
    mean, spread = known.mean(axis=0), known.std(axis=0)
    vocabulary = list(vocabulary)

    def fill(new_mask: np.ndarray, merged: np.ndarray) -> np.ndarray:
        merged = merged.copy()
        rows = np.flatnonzero(new_mask)
        mapped = _mapped_vectors(base, vocabulary, rows, vectors_file) if vectors_file else {}
        rng = np.random.default_rng(seed)
        for row in rows:
            if row in mapped:
                merged[row] = mapped[row]
            else:
                merged[row] = mean + noise * spread * rng.standard_normal(len(mean))
        log.info(
            "new embedding rows: %d from word vectors, %d from the mean of the base rows + noise",
            len(mapped),
            len(rows) - len(mapped),
        )
        return merged

    return fill


def _mapped_vectors(
    base: np.ndarray, vocabulary: list[str], rows: np.ndarray, path: str | Path
) -> dict[int, np.ndarray]:
    """Vectors of the new rows' words, mapped into the base embedding's space."""
    vectors, _ = load_vectors(path, words=vocabulary)
    shared = [i for i in range(_FIRST_WORD, len(base)) if _lookup(vectors, vocabulary[i]) is not None]
    wanted = [int(r) for r in rows if _lookup(vectors, vocabulary[r]) is not None]
    if not wanted:
        return {}
    if len(shared) < MIN_SHARED_WORDS:
        log.warning(
            "%s shares %d words with the base vocabulary (at least %d needed to map its vectors into the "
            "base embedding); new words start from the mean row instead",
            path,
            len(shared),
            MIN_SHARED_WORDS,
        )
        return {}
    x = np.stack([_lookup(vectors, vocabulary[i]) for i in shared]).astype(np.float64)
    y = np.asarray(base[shared], dtype=np.float64)
    weights = fit_linear_map(x, y)
    fitted = _apply(weights, x)
    r2 = 1.0 - ((y - fitted) ** 2).sum() / max(((y - y.mean(axis=0)) ** 2).sum(), 1e-12)
    log.info("word vectors mapped into the base embedding on %d shared words (R^2 %.2f)", len(shared), r2)
    new = np.stack([_lookup(vectors, vocabulary[r]) for r in wanted]).astype(np.float64)
    return dict(zip(wanted, _apply(weights, new), strict=True))


def _lookup(vectors: dict[str, np.ndarray], word: str) -> np.ndarray | None:
    vector = vectors.get(word)
    return vector if vector is not None else vectors.get(word.lower())


def fit_linear_map(x: np.ndarray, y: np.ndarray, ridge: float = 1e-2) -> np.ndarray:
    """Ridge regression `y ≈ [x, 1] @ W`; returns W `[dim_x + 1, dim_y]`.

    The penalty is `ridge` times the mean squared norm of a row of `x`, so it
    does not depend on the vectors' scale.
    """
    design = np.hstack([x, np.ones((len(x), 1))])
    penalty = ridge * float((x**2).sum(axis=1).mean()) * np.eye(design.shape[1])
    penalty[-1, -1] = 0.0  # the offset is not shrunk
    return np.linalg.solve(design.T @ design + penalty, design.T @ y)


def _apply(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.hstack([x, np.ones((len(x), 1))]) @ weights


def embedding_remaps(
    model_weights: Sequence[object],
    vocabulary: Sequence[str],
    base_vocabulary: Sequence[str],
    base_weights: Sequence[tuple[str, np.ndarray]],
    *,
    vectors_file: str | None,
    noise: float,
    seed: int,
) -> dict[str, Remap]:
    """How the rows of each token embedding of the base model map onto this run's vocabulary.

    Base words keep their rows (`index_map`); new words start from
    `new_row_fill`. Only embeddings whose base rows match the base
    vocabulary are remapped.

    Args:
        model_weights: the new model's variables (`model.weights`).
        vocabulary: this run's word vocabulary (the base's, extended).
        base_vocabulary: the base model's word vocabulary.
        base_weights: the base model's `(variable path, value)` pairs.
        vectors_file: word vectors for new words (`embedding.pretrained`), or `None`.
        noise: `init.new_word_noise`.
        seed: seeds the noise.
    """
    index = index_map(vocabulary, base_vocabulary)
    base_rows = dict(base_weights)
    remaps = {}
    for variable in model_weights:
        name = variable.path
        if (
            name.endswith(EMBEDDING_SUFFIX)
            and name in base_rows
            and len(base_rows[name]) == len(base_vocabulary)
        ):
            fill = new_row_fill(
                base_rows[name], vocabulary, vectors_file=vectors_file, noise=noise, seed=seed
            )
            remaps[name] = Remap(axis=0, index=index, what="words", fill=fill)
    return remaps


def word_embedding(
    model_weights: Sequence[object], vocabulary: Sequence[str]
) -> tuple[np.ndarray, list[str]] | None:
    """The first token embedding whose rows match `vocabulary`, and one label per row."""
    for variable in model_weights:
        if variable.path.endswith(EMBEDDING_SUFFIX) and variable.shape[0] == len(vocabulary):
            labels = ["(padding)" if i == 0 else word for i, word in enumerate(vocabulary)]
            return np.asarray(variable.numpy()), labels
    return None
