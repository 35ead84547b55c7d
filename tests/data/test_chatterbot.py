import tensorflow_datasets as tfds

import qa_assistant.data.chatterbot  # noqa: F401  (registers the builder)
from qa_assistant.data.chatterbot import corpus_directory, iter_pairs


def test_every_adjacent_pair_of_every_conversation() -> None:
    pairs = [example for _, example in iter_pairs(corpus_directory())]
    first = next(e for e in pairs if e["category"] == "ai")
    assert first == {
        "question": "What is AI?",
        "answer": first["answer"],
        "category": "ai",
    }
    assert len(pairs) > 2000
    assert len({e["category"] for e in pairs}) >= 15


def test_tfds_load_works_offline() -> None:
    dataset = tfds.load("chatterbot_corpus", split="train")
    example = next(iter(tfds.as_numpy(dataset)))
    assert set(example) == {"question", "answer", "category"}
    assert dataset.cardinality().numpy() > 2000


def test_builtin_source_is_hashed_by_its_rows() -> None:
    from qa_assistant.data.sources import load_pairs

    frame, info = load_pairs("builtin:chatterbot")
    _, same = load_pairs("builtin:chatterbot")
    assert info.rows == len(frame) > 2000
    assert len(info.sha256) == 64
    assert info.sha256 == same.sha256  # reproducible: a changed corpus shows in the manifest
