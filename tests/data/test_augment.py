"""EDA augmentation: what each operation may change, seeding, and that only the training split grows."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from qa_assistant.config import AugmentConfig, load_config
from qa_assistant.data.augment import (
    STOP_WORDS,
    NeighbourSynonyms,
    augment_questions,
    random_deletion,
    random_insertion,
    random_swap,
    synonym_replacement,
)
from qa_assistant.data.prepare import question_key
from qa_assistant.embeddings import VectorIndex, save_vectors
from qa_assistant.errors import UserError
from qa_assistant.training.runner import train_run
from tests.helpers import faq_rows, faq_words, tiny_config

VECTORS = {
    "price": np.array([1.0, 0.0, 0.0]),
    "cost": np.array([1.0, 0.1, 0.0]),
    "fee": np.array([1.0, 0.0, 0.1]),
    "the": np.array([1.0, 0.05, 0.05]),  # a stop-word right next to "price": never a synonym
    "hours": np.array([0.0, 1.0, 0.0]),
    "times": np.array([0.0, 1.0, 0.1]),
    "far": np.array([0.0, 0.0, 1.0]),
}


@pytest.fixture
def synonyms() -> NeighbourSynonyms:
    return NeighbourSynonyms(VectorIndex(VECTORS), k=3, min_similarity=0.9)


def test_synonyms_are_close_neighbours_and_never_stop_words(synonyms: NeighbourSynonyms) -> None:
    assert sorted(synonyms("price")) == ["cost", "fee"]
    assert synonyms("far") == []  # no neighbour is similar enough
    assert synonyms("unknown") == []
    restricted = NeighbourSynonyms(VectorIndex(VECTORS), k=3, min_similarity=0.9, allowed={"fee"})
    assert restricted("price") == ["fee"]


def test_each_operation_changes_only_what_it_may(synonyms: NeighbourSynonyms) -> None:
    rng = random.Random(0)
    words = ["what", "is", "the", "price", "and", "the", "hours"]
    for _ in range(20):
        replaced = synonym_replacement(words, 2, rng, synonyms)
        changed = [(a, b) for a, b in zip(words, replaced, strict=True) if a != b]
        assert changed
        assert all(a in ("price", "hours") and b in synonyms(a) for a, b in changed)
        inserted = random_insertion(words, 2, rng, synonyms)
        added = Counter(inserted) - Counter(words)
        assert len(inserted) == len(words) + 2
        assert set(added) <= {"cost", "fee", "times"}
        assert sorted(random_swap(words, 2, rng)) == sorted(words)
        deleted = random_deletion(words, 0.5, rng)
        assert 1 <= len(deleted) <= len(words)
        assert not Counter(deleted) - Counter(words)
    assert random_deletion(["hi", "you"], 0.999, random.Random(1)) in (["hi"], ["you"])
    assert "the" in STOP_WORDS


def test_copies_are_new_seeded_and_keep_the_other_columns(synonyms: NeighbourSynonyms) -> None:
    frame = pd.DataFrame(
        {
            "question": ["what is the price", "opening hours please", "hi"],
            "answer": ["10 euros", "9 to 5", "Hello"],
        }
    )
    config = AugmentConfig(synonym_count=2, swap_count=1, delete_count=1, samples=3)
    result = augment_questions(frame, config, synonyms=synonyms, seed=4)
    again = augment_questions(frame, config, synonyms=synonyms, seed=4)
    other = augment_questions(frame, config, synonyms=synonyms, seed=5)
    pd.testing.assert_frame_equal(result.frame, again.frame)
    assert not result.frame.equals(other.frame)
    pd.testing.assert_frame_equal(result.frame.iloc[:3], frame)  # the originals come first, unchanged
    copies = result.frame.iloc[3:]
    assert len(copies) == sum(result.counts.values()) > 0
    assert not set(copies["question"]) & set(frame["question"])  # a copy equal to its original is dropped
    assert copies["question"].is_unique
    assert set(copies.loc[copies["answer"] == "Hello", "question"]) <= {"hi"}  # one word: nothing to change
    assert len(result.samples) == 3
    assert {name for name, _, _ in result.samples} <= {"synonym", "swap", "delete"}
    # Each copy names the question it was made from (it keeps that row's answer).
    assert set(result.originals) == set(copies["question"])
    answer_of = dict(zip(frame["question"], frame["answer"], strict=True))
    for copy, answer in zip(copies["question"], copies["answer"], strict=True):
        assert answer_of[result.originals[copy]] == answer
    with pytest.raises(ValueError, match="need a synonyms function"):
        augment_questions(frame, AugmentConfig(insert_count=1), seed=0)


def test_no_copy_recreates_a_held_out_question() -> None:
    # Deleting "please" from the training question would recreate the test question.
    frame = pd.DataFrame({"question": ["opening hours please"] * 1, "answer": ["9 to 5"]})
    config = AugmentConfig(delete_count=30, delete_rate=0.4)
    free = augment_questions(frame, config, seed=0)
    assert "opening hours" in set(free.frame["question"])  # it does come up without the guard
    guarded = augment_questions(frame, config, seed=0, held_out=frozenset({"opening hours"}))
    assert "opening hours" not in set(guarded.frame["question"])
    assert set(guarded.frame["question"]) == set(free.frame["question"]) - {"opening hours"}
    assert guarded.counts["delete"] == free.counts["delete"] - 1


def test_synonym_operations_need_word_vectors_in_the_config() -> None:
    with pytest.raises(UserError, match=r"need word vectors to find synonyms; set augment\.vectors"):
        load_config([], ["augment.synonym_count=1"])
    assert not load_config([]).augment.enabled  # off by default


def test_a_run_augments_only_its_training_split_and_logs_examples(tmp_path: Path, monkeypatch) -> None:
    import qa_assistant.tasks.base

    given = []

    def recording(*args, **kwargs):
        given.append(kwargs["held_out"])
        return augment_questions(*args, **kwargs)

    monkeypatch.setattr(qa_assistant.tasks.base, "augment_questions", recording)
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows()).to_csv(data, index=False)
    vectors = tmp_path / "vectors.txt"
    words = faq_words()
    save_vectors(vectors, words, np.random.default_rng(0).normal(size=(len(words), 4)).astype("float32"))
    settings = ["augment.synonym_count=1", "augment.swap_count=1", "augment.min_similarity=-1"]
    run = train_run(
        tiny_config(*settings, f"augment.vectors={vectors}", train=data), tmp_path / "run"
    ).run_dir
    train = pd.read_json(run / "data" / "train.jsonl", lines=True)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["num_train"] == len(train)  # the written split is the original one
    held_out = pd.concat(
        [pd.read_json(run / "data" / f"{n}.jsonl", lines=True) for n in ("validation", "test")]
    )
    assert given
    assert given[0] == frozenset(question_key(held_out["question"]))  # what augmentation must not recreate
    events = EventAccumulator(str(run / "logs" / "train"))
    events.Reload()
    table = events.Tensors("augmented_examples")[0].tensor_proto.string_val
    assert table[:3] == [b"operation", b"original", b"augmented"]
    counts = json.loads(events.Tensors("augmentation_counts")[0].tensor_proto.string_val[0])
    assert counts["swap"] > len(train) / 2
    assert counts["synonym"] > 0
    originals = {q.encode() for q in train["question"]}
    assert all(table[i] in originals for i in range(4, len(table), 3))  # copies come from training questions
    assert (run / "logs" / "projector" / "words.tsv").read_text().split("\n")[1] == "[UNK]"
