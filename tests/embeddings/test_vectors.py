from pathlib import Path

import numpy as np
import pytest

from qa_assistant.embeddings import embedding_from_file, initial_embedding, load_vectors, save_vectors
from qa_assistant.errors import UserError


def test_glove_format_without_header(tmp_path: Path) -> None:
    path = tmp_path / "glove.txt"
    path.write_text("the 0.1 0.2 0.3\ncat 1 2 3\n", encoding="utf-8")
    vectors, dim = load_vectors(path)
    assert dim == 3
    assert np.allclose(vectors["cat"], [1, 2, 3])


def test_word2vec_round_trip_skips_padding_and_spaces(tmp_path: Path) -> None:
    words = ["", "[UNK]", "hello", "two words", "ünï"]
    matrix = np.arange(10, dtype=np.float32).reshape(5, 2) / 7
    path = tmp_path / "vectors.txt"
    save_vectors(path, words, matrix)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "3 2"
    vectors, dim = load_vectors(path)
    assert dim == 2
    assert set(vectors) == {"[UNK]", "hello", "ünï"}
    assert np.allclose(vectors["hello"], matrix[2], atol=1e-5)


def test_only_wanted_words_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("a 1 1\nB 2 2\nc 3 3\n")
    vectors, _ = load_vectors(path, words=["B", "c"])
    assert set(vectors) == {"B", "c"}


def test_initial_embedding_hits_misses_and_padding_row() -> None:
    vectors = {"cat": np.ones(4, np.float32), "dog": np.full(4, 2, np.float32)}
    vocabulary = ["", "[UNK]", "cat", "Dog", "fish"]
    matrix, hits, misses = initial_embedding(vocabulary, vectors, 4, seed=0)
    assert (hits, misses) == (2, 1)
    assert np.all(matrix[0] == 0)
    assert np.all(matrix[2] == 1)
    assert np.all(matrix[3] == 2)
    assert np.all(np.abs(matrix[4]) <= 0.05)


def test_dimension_mismatch_and_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "v.txt"
    path.write_text("a 1 2 3\n")
    with pytest.raises(UserError, match=r"has dimension 3; embedding\.dim is 5"):
        embedding_from_file(path, ["", "[UNK]", "a"], 5)
    path.write_text("a 1 2 3\nb 1 2\n")
    with pytest.raises(UserError, match="line 2 has 2 values; expected 3"):
        load_vectors(path)
    path.write_text("a 1 x 3\n")
    with pytest.raises(UserError, match="line 1 has a non-numeric value"):
        load_vectors(path)
    with pytest.raises(UserError, match="does not exist"):
        load_vectors(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="is empty"):
        load_vectors(tmp_path / "empty.txt")
