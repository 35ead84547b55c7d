"""Word-level tokenizer: raw text -> cleaned text -> words -> integer ids.

The vocabulary is built from the training split only. Id 0 is padding and id
1 is the out-of-vocabulary token; reserved tokens (e.g. `[START]`, `[END]`
for generation) follow, then words by descending count (ties broken
alphabetically, so a vocabulary is reproducible).

A *reversible* tokenizer (for text the model writes) marks every token that
was glued to the one before it with a joiner, `￭` (as OpenNMT does):
"9 to 5, daily." becomes `9 to 5 ￭, daily ￭.`, and `detokenize` gives back
exactly the cleaned text.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import keras
import tensorflow as tf

from qa_assistant.text.base import VocabularyTokenizer

PAD = ""
OOV = "[UNK]"
JOINER = "\uffed"  # "￭"; NFKC maps it to U+25A0, so cleaned text cannot contain it by default
# Cleaning turns control characters into spaces, so this marker is free to use.
_GLUE = "\x02"
_GLUED = r"([^\p{L}\p{N}\p{M}\s']|\p{Han}|\p{Hiragana}|\p{Katakana})"


def split_words(cleaned: tf.Tensor) -> tf.RaggedTensor:
    """Splits cleaned text into words; punctuation and CJK ideographs are tokens of their own.

    Apostrophes inside words stay ("don't"); other punctuation is split off.
    RE2's `\\w` is ASCII-only, so letters are matched with Unicode classes.
    """
    x = tf.strings.regex_replace(cleaned, r"([^\p{L}\p{N}\p{M}\s'])", r" \1 ")
    x = tf.strings.regex_replace(x, r"(\p{Han}|\p{Hiragana}|\p{Katakana})", r" \1 ")
    x = tf.strings.regex_replace(x, r"(^|\s)'+|'+(\s|$)", r"\1 \2")
    return tf.strings.split(x)


def split_reversible(cleaned: tf.Tensor) -> tf.RaggedTensor:
    """Splits like `split_words`, marking tokens not preceded by a space with `JOINER`.

    Apostrophes stay inside their word (`'tis`, `rock'n'roll`) so that no
    information is lost. `join_reversible` inverts it.

    Example:

    >>> [t.decode() for t in split_reversible(tf.constant(["Hi, it's 9:30."]))[0].numpy()]
    ['Hi', '￭,', "it's", '9', '￭:', '￭30', '￭.']
    """
    x = tf.strings.regex_replace(cleaned, _GLUED, _GLUE + r"\1" + _GLUE)
    x = tf.strings.regex_replace(x, _GLUE + _GLUE, _GLUE)  # one boundary between glued symbols
    x = tf.strings.regex_replace(x, r"(^|\s)" + _GLUE, r"\1")  # a real space is there already
    x = tf.strings.regex_replace(x, _GLUE + r"(\s|$)", r"\1")
    x = tf.strings.regex_replace(x, _GLUE, " " + JOINER)
    return tf.strings.split(x)


def join_reversible(tokens: tf.RaggedTensor | tf.Tensor) -> tf.Tensor:
    """Joins `split_reversible` tokens `[batch, (tokens)]` back into text `[batch]`.

    A token that is `JOINER` alone is a literal `￭` of the text (possible
    with `normalize: none`); a joiner followed by more characters marks a
    glued token.
    """
    text = tf.strings.reduce_join(tokens, axis=-1, separator=" ")
    text = tf.strings.regex_replace(text, "^" + JOINER + "([^ ])", r"\1")
    return tf.strings.regex_replace(text, " " + JOINER + "([^ ])", r"\1")


def ranked_words(
    texts: Iterable[str],
    *,
    min_count: int = 1,
    exclude: Iterable[str] = (),
    split: Callable[[tf.Tensor], tf.RaggedTensor] = split_words,
) -> list[str]:
    """Words of cleaned `texts` (as `split` cuts them) seen at least `min_count` times.

    Most frequent first, ties alphabetical.
    """
    words = split(tf.constant(list(texts), dtype=tf.string)).flat_values.numpy()
    counts = collections.Counter(w.decode("utf-8") for w in words)
    for token in exclude:
        counts.pop(token, None)
    return sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))


def extend_vocabulary(
    base: Sequence[str],
    texts: Iterable[str],
    *,
    max_new_words: int,
    min_count: int = 1,
    reserved_tokens: Sequence[str] = (),
) -> tuple[list[str], list[str]]:
    """A base vocabulary with the new words of `texts` appended; base ids are unchanged.

    Personalising a word-level model keeps every base word at its id (so its
    trained embedding row still applies) and adds the user's words the base
    never saw, most frequent first, up to `max_new_words`.

    Args:
        base: the base model's vocabulary (`""`, `"[UNK]"`, ...).
        texts: cleaned training texts.
        max_new_words: cap on appended words.
        min_count: a new word must occur this often.
        reserved_tokens: tokens that must have ids; appended first if missing.

    Returns:
        `(vocabulary, new_words)`.

    Example:

    >>> extend_vocabulary(["", "[UNK]", "what", "is"], ["what is rust", "rust is fast"], max_new_words=5)
    (['', '[UNK]', 'what', 'is', 'rust', 'fast'], ['rust', 'fast'])
    """
    known = set(base)
    missing = [t for t in reserved_tokens if t not in known]
    new = [w for w in ranked_words(texts, min_count=min_count, exclude=reserved_tokens) if w not in known]
    new = [*missing, *new[:max_new_words]]
    return [*base, *new], new


@keras.saving.register_keras_serializable(package="qa_assistant")
class WordTokenizer(VocabularyTokenizer):
    """Cleans raw strings and maps their words to ids, inside the TF graph.

    Args:
        vocabulary: tokens in id order, starting with `""` (padding) and
            `"[UNK]"`.
        max_length: ids kept per text.
        lowercase, normalize, strip_html, max_chars: cleaning options, see
            `qa_assistant.text.cleaning.clean_text`.
        reversible: split with `split_reversible`, so that `detokenize`
            restores the cleaned text exactly (for generated answers).

    Example:

    >>> tok = WordTokenizer.from_texts(["what is ai", "what is python"], max_length=4)
    >>> tok.vocabulary
    ['', '[UNK]', 'is', 'what', 'ai', 'python']
    >>> tok(tf.constant(["What is AI?"])).numpy().tolist()
    [[3, 2, 4, 1]]
    """

    KIND = "word"
    OPTION_KEYS = ("max_length", "lowercase", "normalize", "strip_html", "max_chars", "reversible")

    def __init__(
        self,
        vocabulary: Sequence[str],
        max_length: int = 32,
        lowercase: bool = True,
        normalize: str = "nfkc",
        strip_html: bool = True,
        max_chars: int | None = 10000,
        reversible: bool = False,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        vocabulary = list(vocabulary)
        if vocabulary[:2] != [PAD, OOV]:
            raise ValueError(f"vocabulary must start with {PAD!r}, {OOV!r}; got {vocabulary[:2]}")
        self.vocabulary = vocabulary
        self.max_length = int(max_length)
        self.lowercase = lowercase
        self.normalize = normalize
        self.strip_html = strip_html
        self.max_chars = max_chars
        self.reversible = bool(reversible)
        self._lookup = keras.layers.StringLookup(
            vocabulary=vocabulary[2:], mask_token=PAD, oov_token=OOV, num_oov_indices=1
        )
        self._build_lookup(self._lookup)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        *,
        max_tokens: int = 20000,
        min_count: int = 1,
        reserved_tokens: Sequence[str] = (),
        **kwargs: Any,
    ) -> WordTokenizer:
        """Builds the vocabulary from already-cleaned texts (the training split)."""
        split = split_reversible if kwargs.get("reversible") else split_words
        ranked = ranked_words(texts, min_count=min_count, exclude=reserved_tokens, split=split)
        room = max(0, max_tokens - 2 - len(reserved_tokens))
        return cls([PAD, OOV, *reserved_tokens, *ranked[:room]], **kwargs)

    def split(self, cleaned: tf.Tensor) -> tf.RaggedTensor:
        """Cleaned text `[batch]` -> tokens `[batch, (words)]`, before lookup and truncation."""
        return split_reversible(cleaned) if self.reversible else split_words(cleaned)

    def tokenize(self, cleaned: tf.Tensor) -> tf.RaggedTensor:
        """Ids `[batch, (length)]` of cleaned text `[batch]`, truncated to `max_length`.

        An empty text becomes a single OOV id: a fully padded row would make
        recurrent layers (and the fused cuDNN kernel) see no step at all.
        """
        cleaned = tf.reshape(tf.convert_to_tensor(cleaned, dtype=tf.string), [-1])
        ids = tf.cast(self._lookup(self.split(cleaned)), tf.int32)
        ids = ids[:, : self.max_length]
        empty = tf.cast(tf.equal(ids.row_lengths(), 0), ids.row_splits.dtype)
        filler = tf.RaggedTensor.from_row_lengths(tf.ones([tf.reduce_sum(empty)], dtype=tf.int32), empty)
        return tf.concat([ids, filler], axis=-1)

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        """Raw strings `[batch]` -> right-padded ids `[batch, longest]` (at least one column).

        Every text has at least one id, so only an empty batch would have
        no column; a zero-length sequence breaks recurrent layers, so it
        gets one padding column (`[0, 1]`).
        """
        ids = self.tokenize(self.clean(texts)).to_tensor(default_value=0)
        return tf.pad(ids, [[0, 0], [0, tf.maximum(1 - tf.shape(ids)[1], 0)]])

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:
        """Ids `[..., length]` -> text `[...]`, padding dropped.

        Words are joined with spaces; a reversible tokenizer also removes the
        spaces its joiners mark, giving back the cleaned text.
        """
        ids = tf.cast(ids, tf.int32)
        shape = tf.shape(ids)
        ids = tf.reshape(ids, [-1, shape[-1]])
        words = tf.gather(tf.constant(self.vocabulary), ids)
        words = tf.ragged.boolean_mask(words, tf.not_equal(ids, 0))
        if self.reversible:
            text = join_reversible(words)
        else:
            text = tf.strings.reduce_join(words, axis=-1, separator=" ")
        return tf.reshape(text, shape[:-1])
