"""Subword (WordPiece) tokenizer: raw text -> cleaned text -> subwords -> ids.

Two ways to get one, same layer, same interface as `WordTokenizer`:

* `SubwordTokenizer.from_texts` computes a WordPiece vocabulary from the
  training split with keras-hub (`text.tokenizer: wordpiece`);
* `SubwordTokenizer.from_preset` reads a pretrained model's WordPiece
  vocabulary (BERT family, e.g. all-MiniLM-L6-v2) and frames every text as
  `[CLS] ... [SEP]`, as the model was trained.

Id 0 is padding (`[PAD]`) in both. Cleaning (`qa_assistant.text.cleaning`)
runs in front of the WordPiece split, inside the graph; an export that holds
this layer needs `import tensorflow_text` when it is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import keras
import keras_hub
import tensorflow as tf

# keras-hub turns a tokenizer's ragged output into Python lists when called
# eagerly; inside this scope it hands back the tf.RaggedTensor, as in a graph.
from keras_hub.src.utils.tensor_utils import no_convert_scope

from qa_assistant.errors import UserError
from qa_assistant.text.base import VocabularyTokenizer

PAD = "[PAD]"
OOV = "[UNK]"
KIND = "wordpiece"


@keras.saving.register_keras_serializable(package="qa_assistant")
class SubwordTokenizer(VocabularyTokenizer):
    """Cleans raw strings and maps their WordPiece subwords to ids, inside the TF graph.

    Args:
        vocabulary: subwords in id order; `vocabulary[0]` is `[PAD]`.
        max_length: ids kept per text, `[CLS]`/`[SEP]` included.
        oov_token: the unknown-subword token (must be in `vocabulary`).
        start_token, end_token: tokens put around every text (a pretrained
            model's `[CLS]` and `[SEP]`), or `None`.
        wordpiece_lowercase, strip_accents: the WordPiece split's own
            normalisation (a preset's settings).
        lowercase, normalize, strip_html, max_chars: cleaning options, see
            `qa_assistant.text.cleaning.clean_text`.

    Example:

    >>> tok = SubwordTokenizer.from_texts(["what is ai", "what is python"] * 5, vocabulary_size=40)
    >>> ids = tok(tf.constant(["What is AI?"]))
    >>> tok.detokenize(ids).numpy()[0].decode()
    'what is ai [UNK]'
    """

    KIND = KIND
    OPTION_KEYS = (
        "max_length",
        "oov_token",
        "start_token",
        "end_token",
        "wordpiece_lowercase",
        "strip_accents",
        "lowercase",
        "normalize",
        "strip_html",
        "max_chars",
    )

    def __init__(
        self,
        vocabulary: Sequence[str],
        max_length: int = 32,
        oov_token: str = OOV,
        start_token: str | None = None,
        end_token: str | None = None,
        wordpiece_lowercase: bool = False,
        strip_accents: bool = False,
        lowercase: bool = True,
        normalize: str = "nfkc",
        strip_html: bool = True,
        max_chars: int | None = 10000,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trainable", False)
        kwargs.setdefault("dtype", "int32")
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        if not self.vocabulary or self.vocabulary[0] != PAD:
            first = self.vocabulary[0] if self.vocabulary else None
            raise ValueError(f"vocabulary must start with the padding token {PAD!r}; got {first!r}")
        self.max_length = int(max_length)
        self.oov_token = oov_token
        self.start_token = start_token
        self.end_token = end_token
        self.wordpiece_lowercase = wordpiece_lowercase
        self.strip_accents = strip_accents
        self.lowercase = lowercase
        self.normalize = normalize
        self.strip_html = strip_html
        self.max_chars = max_chars
        index = {token: i for i, token in enumerate(self.vocabulary)}
        missing = [t for t in (oov_token, start_token, end_token) if t is not None and t not in index]
        if missing:
            raise ValueError(f"special tokens {missing} are not in the vocabulary")
        self._specials = [index[t] for t in (start_token, end_token) if t is not None]
        self._start_id = index.get(start_token) if start_token else None
        self._end_id = index.get(end_token) if end_token else None
        self._oov_id = index[oov_token]
        if self.max_length <= len(self._specials):
            raise ValueError(f"max_length {self.max_length} leaves no room for text tokens")
        self._wordpiece = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=self.vocabulary,
            lowercase=wordpiece_lowercase,
            strip_accents=strip_accents,
            oov_token=oov_token,
            dtype="int32",
            # The same tensorflow-text ops eagerly as in the exported graph
            # (keras-hub would otherwise run a pure-Python copy eagerly).
            _allow_python_workflow=False,
        )
        self._build_lookup(self._wordpiece)

    @classmethod
    def from_texts(
        cls,
        texts: Iterable[str],
        *,
        vocabulary_size: int = 20000,
        reserved_tokens: Sequence[str] = (),
        **kwargs: Any,
    ) -> SubwordTokenizer:
        """Computes a WordPiece vocabulary from already-cleaned texts (the training split).

        Args:
            texts: cleaned training texts.
            vocabulary_size: the vocabulary's size cap, reserved tokens included.
            reserved_tokens: extra whole tokens kept after `[PAD]` and `[UNK]`.
            **kwargs: the layer's other arguments (`max_length`, cleaning).
        """
        texts = [t for t in texts if t]
        reserved = [PAD, OOV, *[t for t in reserved_tokens if t not in (PAD, OOV)]]
        if not texts:
            return cls(reserved, **kwargs)
        data = tf.data.Dataset.from_tensor_slices(tf.constant(texts, dtype=tf.string)).batch(1024)
        vocabulary = keras_hub.tokenizers.compute_word_piece_vocabulary(
            data, max(vocabulary_size, len(reserved) + 1), reserved_tokens=reserved
        )
        return cls(vocabulary, **kwargs)

    @classmethod
    def from_preset(cls, preset_tokenizer: Any, **kwargs: Any) -> SubwordTokenizer:
        """The tokenizer of a keras-hub WordPiece preset (BERT family), in this interface.

        Args:
            preset_tokenizer: a loaded `keras_hub` tokenizer, e.g.
                `keras_hub.tokenizers.Tokenizer.from_preset(DIR)`.
            **kwargs: `max_length` and cleaning options.

        Raises:
            UserError: the preset does not use WordPiece, or pads with an id other than 0.
        """
        if not isinstance(preset_tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
            raise UserError(
                f"the preset's tokenizer is a {type(preset_tokenizer).__name__}; expected a "
                "WordPiece (BERT-family) tokenizer"
            )
        vocabulary = list(preset_tokenizer.get_vocabulary())
        if vocabulary[0] != PAD:
            raise UserError(
                f"the preset's vocabulary starts with {vocabulary[0]!r}; expected the padding token {PAD!r}"
            )
        start = getattr(preset_tokenizer, "cls_token", None)
        end = getattr(preset_tokenizer, "sep_token", None)
        return cls(
            vocabulary,
            oov_token=preset_tokenizer.oov_token,
            start_token=start if start in vocabulary else None,
            end_token=end if end in vocabulary else None,
            wordpiece_lowercase=bool(preset_tokenizer.lowercase),
            strip_accents=bool(preset_tokenizer.strip_accents),
            **kwargs,
        )

    def tokenize(self, cleaned: tf.Tensor) -> tf.RaggedTensor:
        """Ids `[batch, (length)]` of cleaned text `[batch]`, framed and truncated to `max_length`.

        Without start/end tokens an empty text becomes a single `[UNK]`, so
        that no row is empty.
        """
        cleaned = tf.reshape(tf.convert_to_tensor(cleaned, dtype=tf.string), [-1])
        with no_convert_scope():
            ids = tf.cast(self._wordpiece.tokenize(cleaned), tf.int32)
        ids = ids[:, : self.max_length - len(self._specials)]
        rows = ids.nrows()
        pieces = []
        if self._start_id is not None:
            pieces.append(tf.RaggedTensor.from_tensor(tf.fill([rows, 1], self._start_id)))
        pieces.append(ids)
        if self._end_id is not None:
            pieces.append(tf.RaggedTensor.from_tensor(tf.fill([rows, 1], self._end_id)))
        if not self._specials:
            empty = tf.cast(tf.equal(ids.row_lengths(), 0), ids.row_splits.dtype)
            pieces.append(
                tf.RaggedTensor.from_row_lengths(
                    tf.fill([tf.reduce_sum(empty)], tf.constant(self._oov_id, tf.int32)), empty
                )
            )
        return tf.concat(pieces, axis=-1) if len(pieces) > 1 else ids

    def detokenize(self, ids: tf.Tensor) -> tf.Tensor:
        """Ids `[batch, length]` -> text (subwords joined, padding and framing dropped)."""
        keep = tf.not_equal(ids, 0)
        for special in self._specials:
            keep &= tf.not_equal(ids, special)
        with no_convert_scope():
            return self._wordpiece.detokenize(tf.ragged.boolean_mask(ids, keep))
