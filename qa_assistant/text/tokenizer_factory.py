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
from qa_assistant.presets import load_preset_tokenizer
from qa_assistant.text.base import TOKENIZER_FILE
from qa_assistant.text.subword_tokenizer import KIND as SUBWORD_KIND
from qa_assistant.text.subword_tokenizer import SubwordTokenizer
from qa_assistant.text.word_tokenizer import WordTokenizer, extend_vocabulary

log = logging.getLogger(__name__)

Tokenizer = WordTokenizer | SubwordTokenizer


def build_tokenizer(
    config: Config,
    texts: Sequence[str],
    reserved_tokens: Sequence[str] = (),
    base: Tokenizer | None = None,
) -> Tokenizer:
    """The tokenizer a run uses, fitted on already-cleaned training texts.

    A `pretrained` encoder brings its preset's WordPiece vocabulary (nothing
    is fitted); otherwise `text.tokenizer` picks `word` or `wordpiece`. With
    a `base` tokenizer (personalising a trained model) its vocabulary is
    kept: a word vocabulary is extended with the new words of `texts`
    (`init.max_new_words`), a WordPiece one is reused as it is (a
    `pretrained` encoder always takes its preset's).

    Args:
        config: the run's config (`text`, `encoder` and `init` sections).
        texts: cleaned training texts to build a vocabulary from.
        reserved_tokens: whole tokens that must get their own ids.
        base: the tokenizer of the model this run starts from.

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
    if base is not None and config.encoder.type != "pretrained":
        kept = _from_base(config, base, texts, reserved_tokens, cleaning)
        if kept is not None:
            return kept
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


def _wanted_kind(config: Config) -> str:
    return SUBWORD_KIND if config.text.tokenizer == "wordpiece" else WordTokenizer.KIND


def _from_base(
    config: Config,
    base: Tokenizer,
    texts: Sequence[str],
    reserved_tokens: Sequence[str],
    cleaning: dict[str, Any],
) -> Tokenizer | None:
    """The base tokenizer's vocabulary (extended if word-level) with this run's cleaning; `None` if the kinds differ."""
    wanted = _wanted_kind(config)
    if wanted != base.KIND:
        log.warning(
            "the base model's tokenizer is %s but this config asks for %s: a new vocabulary is built, "
            "and the base's token embeddings cannot be carried over",
            base.KIND,
            wanted,
        )
        return None
    if isinstance(base, SubwordTokenizer):
        options = {**base.options(), **cleaning}
        return SubwordTokenizer(base.vocabulary, **options)
    vocabulary, new_words = extend_vocabulary(
        base.vocabulary,
        texts,
        max_new_words=config.init.max_new_words,
        min_count=config.text.min_count,
        reserved_tokens=reserved_tokens,
    )
    shown = ", ".join(new_words[:10]) + (", ..." if len(new_words) > 10 else "")
    log.info(
        "vocabulary: %d base words kept at their ids, %d new words appended%s",
        len(base.vocabulary),
        len(new_words),
        f" ({shown})" if new_words else "",
    )
    return WordTokenizer(vocabulary, **cleaning)


def _preset_tokenizer(config: Config, reserved_tokens: Sequence[str], cleaning: dict[str, Any]) -> Tokenizer:
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
    options = directory / TOKENIZER_FILE
    if not options.is_file():
        raise UserError(f"'{directory}' holds no tokenizer (no {TOKENIZER_FILE})")
    kind = json.loads(options.read_text(encoding="utf-8")).get("kind", "word")
    if kind == SUBWORD_KIND:
        return SubwordTokenizer.load_assets(directory)
    return WordTokenizer.load_assets(directory)


def with_max_length(tokenizer: Tokenizer, max_length: int) -> Tokenizer:
    """A copy of `tokenizer` (same vocabulary and cleaning) that keeps `max_length` ids per text."""
    config = tokenizer.get_config()
    config.update(max_length=max_length, name=f"{tokenizer.name}_{max_length}")
    return type(tokenizer).from_config(config)
