from pathlib import Path

import keras
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from qa_assistant.text.cleaning import clean_text
from qa_assistant.text.word_tokenizer import JOINER, OOV, PAD, WordTokenizer, split_reversible, split_words


def words(text: str) -> list[str]:
    return [w.decode("utf-8") for w in split_words(tf.constant([text])).to_list()[0]]


def test_split_words_punctuation_apostrophes_cjk() -> None:
    assert words("don't stop, 'quoted' café!") == ["don't", "stop", ",", "quoted", "café", "!"]
    assert words("東京 tower") == ["東", "京", "tower"]


def test_vocabulary_is_ranked_by_count_then_alphabetically() -> None:
    tok = WordTokenizer.from_texts(["b a", "b c", "b a"], max_length=4)
    assert tok.vocabulary == [PAD, OOV, "b", "a", "c"]


def test_max_tokens_min_count_and_reserved_tokens() -> None:
    tok = WordTokenizer.from_texts(["a a a b b c"], max_tokens=4, reserved_tokens=("[START]",))
    assert tok.vocabulary == [PAD, OOV, "[START]", "a"]
    tok = WordTokenizer.from_texts(["a a b"], min_count=2)
    assert tok.vocabulary == [PAD, OOV, "a"]


def test_ids_padding_oov_truncation_and_empty_rows() -> None:
    tok = WordTokenizer.from_texts(["what is ai"], max_length=3)
    ids = tok(tf.constant(["What is AI? really", "", "zzz"])).numpy().tolist()
    assert tok.vocabulary == [PAD, OOV, "ai", "is", "what"]
    assert ids == [[4, 3, 2], [1, 0, 0], [1, 0, 0]]  # cut at 3; empty and "zzz" -> one OOV
    ragged = tok.tokenize(tf.constant(["what", "", "ai ?"]))
    assert ragged.to_list() == [[4], [1], [2, 1]]


def test_detokenize_drops_padding() -> None:
    tok = WordTokenizer.from_texts(["what is ai"])
    assert tok.detokenize(tf.constant([[4, 3, 0, 0]])).numpy().tolist() == [b"what is"]


def test_config_round_trip_and_serialization() -> None:
    tok = WordTokenizer.from_texts(["what is ai"], max_length=5, lowercase=False, normalize="none")
    clone = WordTokenizer.from_config(tok.get_config())
    assert clone.get_config() == tok.get_config()
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tok))
    data = tf.constant(["what is AI", "is what"])
    assert (again(data).numpy() == tok(data).numpy()).all()


def test_assets_round_trip(tmp_path: Path) -> None:
    tok = WordTokenizer.from_texts(["what is ai", "ünïcödé words"], max_length=6, strip_html=False)
    tok.save_assets(tmp_path)
    assert (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()[:2] == ["", "[UNK]"]
    loaded = WordTokenizer.load_assets(tmp_path)
    without_name = [{k: v for k, v in t.get_config().items() if k != "name"} for t in (tok, loaded)]
    assert without_name[0] == without_name[1]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=4))
def test_any_text_gives_valid_nonempty_bounded_ids(texts: list[str]) -> None:
    tok = WordTokenizer.from_texts(["a b c"], max_length=8)
    ids = tok.tokenize(tok.clean(tf.constant(texts)))
    lengths = ids.row_lengths().numpy()
    assert ((lengths >= 1) & (lengths <= 8)).all()
    flat = ids.flat_values.numpy()
    assert ((flat >= 1) & (flat < tok.vocabulary_size)).all()


@settings(max_examples=25, deadline=None)
@given(st.lists(st.binary(max_size=60), min_size=0, max_size=4))
def test_any_bytes_and_any_batch_size_give_a_rectangular_id_matrix(texts: list[bytes]) -> None:
    tok = WordTokenizer.from_texts(["a b c"], max_length=8)
    ids = tok(tf.constant(texts, dtype=tf.string)).numpy()
    assert ids.shape[0] == len(texts)
    assert 1 <= ids.shape[1] <= 8  # never zero columns, even for an empty batch
    assert ((ids >= 0) & (ids < tok.vocabulary_size)).all()
    assert (ids[:, 0] >= 1).all()  # every text has at least one real (or OOV) id


@settings(max_examples=25, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="&<"), max_size=80))
def test_tokenising_cleaned_text_again_changes_nothing(raw: str) -> None:
    tok = WordTokenizer.from_texts(["a b c"], max_length=8)
    once = tok.clean(tf.constant([raw]))
    assert tok.tokenize(tok.clean(once)).to_list() == tok.tokenize(once).to_list()


def reversible(text: str) -> list[str]:
    return [w.decode("utf-8") for w in split_reversible(tf.constant([text])).to_list()[0]]


def test_reversible_split_marks_glued_tokens() -> None:
    assert reversible("Hi, it's 9:30.") == [
        "Hi",
        JOINER + ",",
        "it's",
        "9",
        JOINER + ":",
        JOINER + "30",
        JOINER + ".",
    ]
    assert reversible("a , b") == ["a", ",", "b"]
    assert reversible("東京 tower!") == ["東", JOINER + "京", "tower", JOINER + "!"]


def test_reversible_tokenizer_gives_back_the_cleaned_text() -> None:
    answers = ["Our hours: 9 to 5, Mon-Fri!", "Write to help@example.com...", "'Quoted' text (really)."]
    tok = WordTokenizer.from_texts(
        answers, lowercase=False, reversible=True, reserved_tokens=("[START]", "[END]")
    )
    ids = tok(tf.constant(answers))
    assert [t.decode() for t in tok.detokenize(ids).numpy()] == answers
    batched = tok.detokenize(tf.reshape(ids, [1, 3, -1]))  # any leading shape
    assert batched.shape == (1, 3)
    clone = WordTokenizer.from_config(tok.get_config())
    assert clone.reversible
    assert clone.vocabulary == tok.vocabulary


def test_reversible_option_survives_assets(tmp_path: Path) -> None:
    tok = WordTokenizer.from_texts(["Hi, you."], lowercase=False, reversible=True)
    tok.save_assets(tmp_path)
    loaded = WordTokenizer.load_assets(tmp_path)
    assert loaded.reversible
    assert loaded.detokenize(loaded(tf.constant(["Hi, you."]))).numpy().tolist() == [b"Hi, you."]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=4))
def test_reversible_round_trip_of_any_cleaned_text(texts: list[str]) -> None:
    cleaned = clean_text(texts, lowercase=False, normalize="none")
    tokens = split_reversible(cleaned)
    vocabulary = sorted({t.decode("utf-8") for t in tokens.flat_values.numpy()} | {"x"})
    tok = WordTokenizer(
        [PAD, OOV, *vocabulary], max_length=10_000, lowercase=False, normalize="none", reversible=True
    )
    back = tok.detokenize(tok.tokenize(cleaned).to_tensor()).numpy()
    expected = cleaned.numpy()
    for got, want in zip(back, expected, strict=True):
        assert got == want or not want  # an empty text becomes one OOV id
