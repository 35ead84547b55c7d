"""Rows of new words: word vectors mapped into the base embedding, or the mean row plus noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qa_assistant.embeddings import save_vectors
from qa_assistant.personalization.vocabulary import fit_linear_map, new_row_fill


def test_vectors_of_new_words_are_carried_into_the_base_space(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(30)]
    vectors = rng.normal(size=(32, 5))  # a word2vec space: 30 base words, then "new1", "new2"
    projection = rng.normal(size=(5, 3))
    base = np.vstack([np.zeros((2, 3)), vectors[:30] @ projection + 0.5])  # padding, [UNK], trained rows
    path = tmp_path / "vectors.txt"
    save_vectors(path, [*words, "new1", "new2"], vectors.astype(np.float32))
    vocabulary = ["", "[UNK]", *words, "new1", "new2", "unseen"]
    fill = new_row_fill(base, vocabulary, vectors_file=path, noise=0.0)
    merged = np.vstack([base, np.zeros((3, 3))])
    result = fill(np.arange(len(vocabulary)) >= 32, merged)
    np.testing.assert_allclose(result[32:34], vectors[30:32] @ projection + 0.5, atol=0.05)
    np.testing.assert_allclose(result[34], base[2:].mean(axis=0), atol=1e-6)  # no vector: the mean row
    np.testing.assert_array_equal(result[:32], base)


def test_noise_is_scaled_to_the_base_rows_and_seeded() -> None:
    base = np.random.default_rng(1).normal(scale=3.0, size=(200, 4))
    vocabulary = ["", "[UNK]", *[f"w{i}" for i in range(198)], *[f"n{i}" for i in range(500)]]
    merged = np.vstack([base, np.zeros((500, 4))])
    mask = np.arange(700) >= 200
    first = new_row_fill(base, vocabulary, noise=0.1, seed=5)(mask, merged)
    again = new_row_fill(base, vocabulary, noise=0.1, seed=5)(mask, merged)
    np.testing.assert_array_equal(first, again)
    spread = first[200:].std(axis=0) / base[2:].std(axis=0)
    np.testing.assert_allclose(spread, 0.1, rtol=0.2)


def test_linear_map_recovers_an_exact_relation() -> None:
    x = np.random.default_rng(2).normal(size=(50, 4))
    weights = np.arange(12, dtype=float).reshape(4, 3)
    fitted = fit_linear_map(x, x @ weights + 1.0, ridge=1e-8)
    np.testing.assert_allclose(fitted[:4], weights, atol=1e-4)
    np.testing.assert_allclose(fitted[4], 1.0, atol=1e-4)
