"""Word2Vec on a planted corpus whose neighbours are known; the CLI commands; the file round trip."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qa_assistant.cli import main
from qa_assistant.embeddings import (
    VectorIndex,
    Word2VecConfig,
    load_vectors,
    read_text_corpus,
    train_word2vec,
)
from qa_assistant.embeddings.word2vec import skipgram_pairs
from qa_assistant.errors import UserError

FRUIT, VEHICLES = ["apple", "pear", "plum"], ["car", "bus", "tram"]
EATING, TRAVEL = ["eat", "fresh", "sweet", "ripe", "juicy"], ["drive", "fast", "ticket", "station", "road"]


def planted_corpus(sentences: int = 1200, seed: int = 0) -> list[str]:
    """Fruit only ever appears between eating words, vehicles between travel words.

    Words of one group never meet each other but share every context, so
    skip-gram must put them next to each other.
    """
    rng = random.Random(seed)
    texts = []
    for _ in range(sentences):
        group, context = (FRUIT, EATING) if rng.random() < 0.5 else (VEHICLES, TRAVEL)
        texts.append(f"{rng.choice(context)} {rng.choice(group).title()} {rng.choice(context)}.")
    return texts


@pytest.fixture(scope="module")
def planted() -> tuple[list[str], np.ndarray]:
    config = Word2VecConfig(dim=8, window=2, min_count=1, subsample=0, epochs=5, seed=1)
    return train_word2vec(planted_corpus(), config)


def test_neighbours_of_planted_words_are_their_group(planted: tuple[list[str], np.ndarray]) -> None:
    words, vectors = planted
    assert "apple" in words  # cleaned and lower-cased like the word tokenizer
    assert "." in words
    index = VectorIndex(dict(zip(words, vectors, strict=True)))
    for group in (FRUIT, VEHICLES):
        for word in group:
            nearest = {w for w, _ in index.neighbours(word, 2)}
            assert nearest == set(group) - {word}, (word, index.neighbours(word, 4))


def test_skipgram_pairs_stay_inside_the_window() -> None:
    sentence = np.arange(10, dtype=np.int32)
    config = Word2VecConfig(window=3, subsample=0)
    targets, contexts = skipgram_pairs([sentence], np.ones(10), config, np.random.default_rng(0))
    distance = np.abs(targets - contexts)
    assert distance.min() >= 1
    assert distance.max() <= 3
    assert (distance == 1).sum() == 18  # neighbours always meet: 9 pairs, both ways


def test_cli_writes_word2vec_text_that_loads_back_and_neighbours_reads_it(tmp_path: Path, capsys) -> None:
    data = tmp_path / "corpus.csv"
    corpus = planted_corpus(600)
    pd.DataFrame({"question": corpus[::2], "answer": corpus[1::2]}).to_csv(data, index=False)
    assert len(read_text_corpus(str(data))) == 600  # questions and answers
    vectors = tmp_path / "vectors.txt"
    command = ["word2vec", "--data", str(data), "--output", str(vectors)]
    command += ["--dim", "8", "--window", "2", "--min-count", "1", "--epochs", "5", "--seed", "1"]
    command += ["--subsample", "0"]  # 17 words: each is "frequent"
    assert main(command) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"17 words x 8 dimensions -> {vectors}"
    code = main(["neighbours", "--vectors", str(vectors), "--top-k", "2", "pear", "nosuchword"])
    out, err = capsys.readouterr()
    assert code == 2  # the second word has no vector
    assert "error: 'nosuchword' has no vector" in err
    assert "Traceback" not in err
    line = out.splitlines()[0]
    assert line.startswith("pear: ")
    assert {"apple", "plum"} == {part.split(" ")[0] for part in line[len("pear: ") :].split(", ")}
    loaded, dim = load_vectors(vectors)
    assert dim == 8
    assert len(loaded) == 17  # 16 words and "."
    assert vectors.read_text().splitlines()[0] == "17 8"


def test_too_little_text_is_a_user_error() -> None:
    with pytest.raises(UserError, match="expected at least 2"):
        train_word2vec(["hello"], Word2VecConfig(min_count=1))
    with pytest.raises(UserError, match="word2vec dim must be at least 1"):
        train_word2vec(["a b"], Word2VecConfig(dim=0))
