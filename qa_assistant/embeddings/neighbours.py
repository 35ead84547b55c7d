"""Nearest neighbours of a word by cosine similarity of its vector.

Used by `qa-assistant neighbours` and by data augmentation, where a word's
nearest neighbours stand in for its synonyms.

Example:

>>> import numpy as np
>>> index = VectorIndex({"cat": np.array([1.0, 0.1]), "dog": np.array([0.9, 0.2]), "car": np.array([0.0, 1.0])})
>>> [word for word, _ in index.neighbours("cat", 2)]
['dog', 'car']
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from qa_assistant.embeddings.vectors import load_vectors
from qa_assistant.errors import UserError


class VectorIndex:
    """Unit-normalised word vectors, searchable by cosine similarity.

    Args:
        vectors: word -> vector (all of one dimension).
    """

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.words = list(vectors)
        matrix = np.stack([np.asarray(vectors[w], dtype=np.float32) for w in self.words]) if vectors else None
        if matrix is None:
            self.unit = np.zeros((0, 0), dtype=np.float32)
        else:
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            self.unit = matrix / np.maximum(norms, 1e-12)
        self.position = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def from_file(cls, path: str | Path) -> VectorIndex:
        """Reads a word2vec/GloVe text file (`embeddings.vectors.load_vectors`)."""
        vectors, _ = load_vectors(path)
        return cls(vectors)

    def __contains__(self, word: str) -> bool:
        return word in self.position

    def neighbours(
        self, word: str, k: int = 10, *, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The `k` words most similar to `word` (itself excluded), best first.

        Args:
            word: the query; looked up as given, then lower-cased.
            k: how many.
            allowed: only these words may be returned (e.g. a model's vocabulary).

        Returns:
            `(word, cosine similarity)` pairs; empty when `word` has no vector.
        """
        row = self.position.get(word, self.position.get(word.lower()))
        if row is None:
            return []
        similarity = self.unit @ self.unit[row]
        similarity[row] = -np.inf
        if allowed is not None:
            keep = np.fromiter((w in allowed for w in self.words), dtype=bool, count=len(self.words))
            similarity[~keep] = -np.inf
        count = min(k, int(np.isfinite(similarity).sum()))
        best = np.argsort(-similarity, kind="stable")[:count]
        return [(self.words[i], float(similarity[i])) for i in best]


def nearest_neighbours(path: str | Path, word: str, k: int = 10) -> list[tuple[str, float]]:
    """`k` nearest neighbours of `word` in a vector file.

    Raises:
        UserError: the word has no vector in the file.
    """
    index = VectorIndex.from_file(path)
    if word not in index and word.lower() not in index:
        raise UserError(
            f"'{word}' has no vector in '{path}' ({len(index.words)} words); expected a word it has"
        )
    return index.neighbours(word, k)
