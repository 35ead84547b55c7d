import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.config import load_config
from qa_assistant.text.subword_tokenizer import SubwordTokenizer
from qa_assistant.text.tokenizer_factory import build_tokenizer, load_tokenizer, with_max_length
from qa_assistant.text.word_tokenizer import WordTokenizer
from tests.helpers import faq_rows, tiny_preset

TEXTS = [row["question"] for row in faq_rows(per_answer=12)]


@pytest.fixture(scope="module")
def subword() -> SubwordTokenizer:
    return SubwordTokenizer.from_texts(TEXTS, vocabulary_size=50, max_length=6)


def test_vocabulary_starts_with_padding_and_unknown(subword: SubwordTokenizer) -> None:
    assert subword.vocabulary[:2] == ["[PAD]", "[UNK]"]
    assert any(token.startswith("##") for token in subword.vocabulary)  # real subwords
    assert 10 < subword.vocabulary_size <= 50


def test_ids_are_right_padded_truncated_and_never_empty(subword: SubwordTokenizer) -> None:
    ids = subword(tf.constant(["What is your PRICE?", "", "tell me the opening times please now"])).numpy()
    assert ids.dtype == np.int32
    assert ids.shape == (3, 6)
    assert ids[1].tolist() == [1, 0, 0, 0, 0, 0]  # empty text -> one [UNK]
    assert np.all(ids[2] != 0)  # truncated to max_length, not padded
    # Cleaning lower-cases first, so case does not change the ids.
    assert ids[0].tolist() == subword(tf.constant(["what is your price?"])).numpy()[0].tolist()


def test_unknown_words_fall_back_to_pieces_not_padding(subword: SubwordTokenizer) -> None:
    ids = subword.tokenize(tf.constant(["pricey"])).numpy()[0]
    assert len(ids) >= 1
    assert 0 not in ids


def test_config_and_assets_round_trip(subword: SubwordTokenizer, tmp_path) -> None:
    texts = tf.constant(["how do i find your refund", "ça coûte combien ?"])
    clone = SubwordTokenizer.from_config(subword.get_config())
    assert np.array_equal(clone(texts), subword(texts))
    subword.save_assets(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, SubwordTokenizer)
    assert loaded.vocabulary == subword.vocabulary
    assert np.array_equal(loaded(texts), subword(texts))


def test_factory_picks_word_or_wordpiece() -> None:
    word = build_tokenizer(load_config([], ["text.max_length=5"]), TEXTS)
    piece = build_tokenizer(load_config([], ["text.tokenizer=wordpiece", "text.max_tokens=40"]), TEXTS)
    assert isinstance(word, WordTokenizer)
    assert word.max_length == 5
    assert isinstance(piece, SubwordTokenizer)
    assert piece.vocabulary_size <= 40


def test_with_max_length_keeps_vocabulary_and_cleaning(subword: SubwordTokenizer) -> None:
    longer = with_max_length(subword, 12)
    assert longer.vocabulary == subword.vocabulary
    assert longer.max_length == 12
    ids = longer(tf.constant(["tell me the opening times please now"])).numpy()[0]
    assert np.count_nonzero(ids) > 6


def test_preset_tokenizer_frames_with_cls_and_sep(tmp_path) -> None:
    preset = tiny_preset(tmp_path / "preset")
    config = load_config([], ["encoder.type=pretrained", f"encoder.preset={preset}", "text.max_length=5"])
    tok = build_tokenizer(config, [])
    cls, sep = tok.vocabulary.index("[CLS]"), tok.vocabulary.index("[SEP]")
    ids = tok(tf.constant(["What is your price?", "", "tell me the opening times please"])).numpy()
    assert ids.shape == (3, 5)
    words = [tok.vocabulary.index(w) for w in ("what", "is", "your")]
    assert ids[0].tolist() == [cls, *words, sep]
    assert ids[1].tolist() == [cls, sep, 0, 0, 0]
    assert ids[2, 0] == cls
    assert ids[2, 4] == sep
    tok.save_assets(tmp_path / "saved")
    assert np.array_equal(load_tokenizer(tmp_path / "saved")(tf.constant(["what is your price?"])), ids[:1])
