"""What every tokenizer layer shares: cleaning in front, padding behind, assets on disk.

A subclass sets `KIND` and `OPTION_KEYS` (its constructor arguments besides the
vocabulary, all attributes of the same name) and implements `tokenize`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import keras
import tensorflow as tf

from qa_assistant.atomic import write_text
from qa_assistant.text.cleaning import clean_text

TOKENIZER_FILE = "tokenizer.json"  # everything but the vocabulary (`vocab.txt`)


class VocabularyTokenizer(keras.layers.Layer):
    """Base of the tokenizer layers (`WordTokenizer`, `SubwordTokenizer`)."""

    KIND: ClassVar[str]
    OPTION_KEYS: ClassVar[tuple[str, ...]]

    vocabulary: list[str]
    lowercase: bool
    normalize: str
    strip_html: bool
    max_chars: int | None

    def _build_lookup(self, lookup: keras.layers.Layer) -> None:
        """Builds the vocabulary lookup now (it needs no input shape) and marks this layer built."""
        lookup.build(None)
        self.built = True

    @property
    def vocabulary_size(self) -> int:
        return len(self.vocabulary)

    def clean(self, texts: tf.Tensor) -> tf.Tensor:
        """The cleaning this tokenizer applies to raw text."""
        return clean_text(
            texts,
            lowercase=self.lowercase,
            normalize=self.normalize,
            strip_html=self.strip_html,
            max_chars=self.max_chars,
        )

    def tokenize(self, cleaned: tf.Tensor) -> tf.RaggedTensor:
        """Ids `[batch, (length)]` of cleaned text `[batch]`; never an empty row."""
        raise NotImplementedError

    def call(self, texts: tf.Tensor) -> tf.Tensor:
        """Raw strings `[batch]` -> right-padded ids `[batch, longest]`."""
        return self.tokenize(self.clean(texts)).to_tensor(default_value=0)

    def options(self) -> dict[str, Any]:
        """Everything but the vocabulary: what `tokenizer.json` holds."""
        return {key: getattr(self, key) for key in self.OPTION_KEYS}

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, **self.options())
        return config

    def save_assets(self, directory: str | Path) -> None:
        """Writes `vocab.txt` (one token per line, id = line number) and `tokenizer.json`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_text(directory / "vocab.txt", "\n".join(self.vocabulary) + "\n")
        write_text(directory / TOKENIZER_FILE, json.dumps({"kind": self.KIND, **self.options()}, indent=2))

    @classmethod
    def load_assets(cls, directory: str | Path) -> VocabularyTokenizer:
        """Inverse of `save_assets`."""
        directory = Path(directory)
        vocabulary = (directory / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
        options = json.loads((directory / TOKENIZER_FILE).read_text(encoding="utf-8"))
        return cls(vocabulary, **{k: v for k, v in options.items() if k in cls.OPTION_KEYS})
