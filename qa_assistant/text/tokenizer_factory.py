"""Choosing, saving and loading a tokenizer: word, WordPiece, or a pretrained preset's.

Every tokenizer here is a Keras layer with the same interface, so tasks, the
input pipeline and the export do not care which one they hold:

* `clean(raw)` -> cleaned strings; `tokenize(cleaned)` -> ragged int32 ids,
  truncated to `max_length`, never an empty row;
* `tokenizer(raw)` -> dense int32 ids right-padded with 0 (id 0 = padding);
* `vocabulary`, `vocabulary_size`, `save_assets(dir)`, `load_assets(dir)`.

Example:

>>> from qa_assistant.config import load_config
>>> tok = build_tokenizer(load_config([], ["text.max_length=4"]), ["what is ai"])
>>> type(tok).__name__, tok.max_length
('WordTokenizer', 4)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa_assistant.config import Config
from qa_assistant.errors import UserError
from qa_assistant.text.subword_tokenizer import KIND as SUBWORD_KIND
from qa_assistant.text.subword_tokenizer import SubwordTokenizer
from qa_assistant.text.word_tokenizer import WordTokenizer

log = logging.getLogger(__name__)

Tokenizer = WordTokenizer | SubwordTokenizer


def build_tokenizer(config: Config, texts: Sequence[str], reserved_tokens: Sequence[str] = ()) -> Tokenizer:
    """The tokenizer a run uses, fitted on already-cleaned training texts.

    A `pretrained` encoder brings its preset's WordPiece vocabulary (nothing
    is fitted); otherwise `text.tokenizer` picks `word` or `wordpiece`.

    Args:
        config: the run's config (`text` and `encoder` sections).
        texts: cleaned training texts to build a vocabulary from.
        reserved_tokens: whole tokens that must get their own ids.

    Raises:
        UserError: reserved tokens that a pretrained vocabulary lacks.
    """
    text = config.text
    cleaning = {
        "max_length": text.max_length,
        "lowercase": text.lowercase,
        "normalize": text.normalize,
        "strip_html": text.strip_html,
        "max_chars": text.max_chars,
    }
    if config.encoder.type == "pretrained":
        return _preset_tokenizer(config, reserved_tokens, cleaning)
    if text.tokenizer == "wordpiece":
        return SubwordTokenizer.from_texts(
            texts, vocabulary_size=text.max_tokens, reserved_tokens=reserved_tokens, **cleaning
        )
    return WordTokenizer.from_texts(
        texts,
        max_tokens=text.max_tokens,
        min_count=text.min_count,
        reserved_tokens=reserved_tokens,
        **cleaning,
    )


def _preset_tokenizer(config: Config, reserved_tokens: Sequence[str], cleaning: dict[str, Any]) -> Tokenizer:
    from qa_assistant.models.presets import load_preset_tokenizer

    preset = load_preset_tokenizer(config.encoder.preset)
    tokenizer = SubwordTokenizer.from_preset(preset, **cleaning)
    missing = [t for t in reserved_tokens if t not in set(tokenizer.vocabulary)]
    if missing:
        raise UserError(f"preset '{config.encoder.preset}' has no tokens {missing}; expected them reserved")
    if config.text.lowercase and not tokenizer.wordpiece_lowercase:
        log.warning(
            "preset '%s' is cased but text.lowercase is true: it will only see lower-case text",
            config.encoder.preset,
        )
    if config.text.tokenizer != "word":
        log.info("text.tokenizer is ignored: a pretrained encoder uses its preset's tokenizer")
    return tokenizer


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Reads what `save_assets` wrote, whichever tokenizer it was.

    Raises:
        UserError: the directory holds no tokenizer.
    """
    directory = Path(directory)
    options = directory / "tokenizer.json"
    if not options.is_file():
        raise UserError(f"'{directory}' holds no tokenizer (no tokenizer.json)")
    kind = json.loads(options.read_text(encoding="utf-8")).get("kind", "word")
    if kind == SUBWORD_KIND:
        return SubwordTokenizer.load_assets(directory)
    return WordTokenizer.load_assets(directory)


def with_max_length(tokenizer: Tokenizer, max_length: int) -> Tokenizer:
    """A copy of `tokenizer` (same vocabulary and cleaning) that keeps `max_length` ids per text."""
    config = tokenizer.get_config()
    config.update(max_length=max_length, name=f"{tokenizer.name}_{max_length}")
    return type(tokenizer).from_config(config)
