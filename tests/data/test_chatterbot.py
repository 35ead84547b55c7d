from pathlib import Path

import pytest
import tensorflow_datasets as tfds

import qa_assistant.data.chatterbot as chatterbot
from qa_assistant.data.chatterbot import ChatterbotCorpus, corpus_directory, iter_pairs

_YAML = """\
categories:
- tiny
conversations:
- - What is AI?
  - Artificial intelligence is the study of intelligent machines.
  - Is it dangerous?
- In a game of bingo, which number is "two little ducks"? - '22'
- - How many legs has a spider?
  - 8
- - A question nobody answered
- - Who wrote it?
  -
  - Nobody knows.
- - "   "
  - Blank turns are not questions.
"""


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    directory = tmp_path / "english"
    directory.mkdir()
    (directory / "tiny.yml").write_text(_YAML, encoding="utf-8")
    return directory


def test_builder_on_written_yaml_keeps_only_real_turns(
    tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(chatterbot, "corpus_directory", lambda: tiny_corpus)
    builder = ChatterbotCorpus(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare()
    rows = {
        (e["question"].decode(), e["answer"].decode(), e["category"].decode())
        for e in tfds.as_numpy(builder.as_dataset(split="train"))
    }
    assert rows == {
        ("What is AI?", "Artificial intelligence is the study of intelligent machines.", "tiny"),
        ("Artificial intelligence is the study of intelligent machines.", "Is it dangerous?", "tiny"),
        ("How many legs has a spider?", "8", "tiny"),  # a scalar turn becomes text
        ("Who wrote it?", "Nobody knows.", "tiny"),  # the empty turn between them is dropped
    }
    assert "conversation 1 is a str, not a list of turns" in caplog.text


def test_real_corpus_has_no_pairs_cut_from_a_string() -> None:
    pairs = [example for _, example in iter_pairs(corpus_directory())]
    first = next(e for e in pairs if e["category"] == "ai")
    assert first == {"question": "What is AI?", "answer": first["answer"], "category": "ai"}
    # A conversation iterated as a string gives pairs of single characters ('o' -> 'f').
    assert not [e for e in pairs if len(e["question"]) <= 1 and len(e["answer"]) <= 1]
    assert not [e for e in pairs if not e["question"].strip() or not e["answer"].strip()]
    assert len(pairs) > 2000
    assert len({e["category"] for e in pairs}) >= 15


def test_tfds_load_works_offline() -> None:
    builder = tfds.builder("chatterbot_corpus")
    assert str(builder.version) == str(ChatterbotCorpus.VERSION)
    dataset = tfds.load("chatterbot_corpus", split="train")
    example = next(iter(tfds.as_numpy(dataset)))
    assert set(example) == {"question", "answer", "category"}
    assert dataset.cardinality().numpy() == sum(1 for _ in iter_pairs(corpus_directory()))


def test_builtin_source_is_hashed_by_its_rows() -> None:
    from qa_assistant.data.sources import load_pairs

    frame, info = load_pairs("builtin:chatterbot")
    _, same = load_pairs("builtin:chatterbot")
    assert info.rows == len(frame) > 2000
    assert len(info.sha256) == 64
    assert info.sha256 == same.sha256  # reproducible: a changed corpus shows in the manifest
