"""Word vectors in the GloVe / word2vec text format: load, save, initialise.

The format is one word per line followed by its numbers, separated by spaces.
word2vec files start with a header line `COUNT DIM`; GloVe files do not. Both
are read by `load_vectors`; `save_vectors` writes the word2vec flavour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from qa_assistant.atomic import write_text
from qa_assistant.errors import UserError

log = logging.getLogger(__name__)


def load_vectors(
    path: str | Path, *, words: Iterable[str] | None = None
) -> tuple[dict[str, np.ndarray], int]:
    """Reads a vector file.

    Args:
        path: GloVe or word2vec text file (UTF-8).
        words: if given, only these words (or their lower-case forms) are kept,
            which keeps memory small for large files.

    Returns:
        `(vectors, dim)`.

    Raises:
        UserError: missing file, inconsistent dimensions, non-numeric values.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"vector file '{path}' does not exist; expected a GloVe/word2vec text file")
    wanted = None if words is None else {w for word in words for w in (word, word.lower())}
    vectors: dict[str, np.ndarray] = {}
    dim = None
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            parts = line.rstrip("\n\r").rstrip(" ").split(" ")
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # word2vec header: COUNT DIM
                continue
            if len(parts) < 2:
                continue
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 < dim:
                raise UserError(
                    f"vector file '{path}' line {number} has {len(parts) - 1} values; expected {dim}"
                )
            word = " ".join(parts[: len(parts) - dim])
            if wanted is not None and word not in wanted:
                continue
            try:
                vectors[word] = np.asarray(parts[len(parts) - dim :], dtype=np.float32)
            except ValueError:
                raise UserError(f"vector file '{path}' line {number} has a non-numeric value") from None
    if dim is None:
        raise UserError(f"vector file '{path}' is empty; expected one word and its vector per line")
    return vectors, dim


def save_vectors(path: str | Path, words: Sequence[str], matrix: np.ndarray) -> None:
    """Writes the word2vec text format (header `COUNT DIM`, then one word per line)."""
    if len(words) != len(matrix):
        raise ValueError(f"{len(words)} words but {len(matrix)} vectors")
    lines = [f"{len(words)} {matrix.shape[1]}"]
    for word, row in zip(words, matrix, strict=True):
        if not word or any(c.isspace() for c in word):
            continue  # padding or a token the format cannot hold
        lines.append(word + " " + " ".join(f"{v:.6g}" for v in row))
    lines[0] = f"{len(lines) - 1} {matrix.shape[1]}"
    write_text(path, "\n".join(lines) + "\n")  # a reader never sees half a file


def initial_embedding(
    vocabulary: Sequence[str],
    vectors: dict[str, np.ndarray],
    dim: int,
    *,
    seed: int = 0,
) -> tuple[np.ndarray, int, int]:
    """An embedding matrix for `vocabulary` with rows taken from `vectors`.

    Rows of words without a vector are drawn like Keras' default
    (`uniform(-0.05, 0.05)`); row 0 (padding) is zero.

    Returns:
        `(matrix, hits, misses)`; misses count words other than padding/OOV.
    """
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-0.05, 0.05, size=(len(vocabulary), dim)).astype(np.float32)
    matrix[0] = 0.0
    hits = 0
    for index, word in enumerate(vocabulary):
        vector = vectors.get(word)
        if vector is None:
            vector = vectors.get(word.lower())
        if vector is not None and index > 0:
            matrix[index] = vector
            hits += 1
    misses = max(0, len(vocabulary) - 2 - hits)
    return matrix, hits, misses


def embedding_from_file(
    path: str | Path, vocabulary: Sequence[str], dim: int, *, seed: int = 0
) -> np.ndarray:
    """Loads `path` and builds the initial embedding, logging hits and misses.

    Raises:
        UserError: the file's dimension differs from `dim`.
    """
    vectors, file_dim = load_vectors(path, words=vocabulary)
    if file_dim != dim:
        raise UserError(
            f"vector file '{path}' has dimension {file_dim}; embedding.dim is {dim} (set embedding.dim={file_dim})"
        )
    matrix, hits, misses = initial_embedding(vocabulary, vectors, dim, seed=seed)
    log.info(
        "embedding initialised from %s: %d of %d words found, %d missing (random init)",
        path,
        hits,
        len(vocabulary) - 2,
        misses,
    )
    return matrix
