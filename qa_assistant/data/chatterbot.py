"""`builtin:chatterbot`: the English chatterbot-corpus as a TFDS builder.

The `chatterbot-corpus` package (BSD-3-Clause) ships YAML files of short
conversations, one file per topic. Every adjacent (utterance, reply) pair of a
conversation becomes one example, with the file's topic as `category`.
Because the data comes from an installed package, `tfds.load` works offline:

>>> import qa_assistant.data.chatterbot  # registers the builder
>>> import tensorflow_datasets as tfds
>>> ds = tfds.load("chatterbot_corpus", split="train")  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import tensorflow_datasets as tfds
import yaml

from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

_DESCRIPTION = """
English part of chatterbot-corpus: every adjacent utterance/reply pair of each
conversation, with the topic (file name) as category.
"""


def corpus_directory(language: str = "english") -> Path:
    """The installed package's YAML directory for one language."""
    import importlib.util

    spec = importlib.util.find_spec("chatterbot_corpus")
    if spec is None or spec.origin is None:
        raise UserError(
            "builtin:chatterbot needs the 'chatterbot-corpus' package; "
            "install it with: pip install chatterbot-corpus"
        )
    return Path(spec.origin).parent / "data" / language


def conversation_turns(conversation: Any) -> list[str] | None:
    """The turns of one YAML conversation, or `None` if it is not a list of turns.

    A conversation must be a YAML list. The corpus has one written as a plain
    string (`trivia.yml`); iterating that string would give one-character
    "turns" and pairs such as `'o' -> 'f'`, so it is rejected instead. Empty
    (`None`) turns are dropped; scalar turns (e.g. the number `22`) become text.
    """
    if not isinstance(conversation, list):
        return None
    return [str(turn) for turn in conversation if turn is not None and str(turn).strip()]


def iter_pairs(directory: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """Yields `(key, {"question", "answer", "category"})` from the YAML files.

    Conversations that are not lists of turns are skipped with a warning.
    """
    for path in sorted(directory.glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for c, conversation in enumerate(document.get("conversations") or []):
            turns = conversation_turns(conversation)
            if turns is None:
                log.warning(
                    "%s: conversation %d is a %s, not a list of turns; skipped: %.60r",
                    path.name,
                    c,
                    type(conversation).__name__,
                    conversation,
                )
                continue
            for t, (question, answer) in enumerate(itertools.pairwise(turns)):
                yield (
                    f"{path.stem}-{c}-{t}",
                    {"question": question, "answer": answer, "category": path.stem},
                )


class ChatterbotCorpus(tfds.core.GeneratorBasedBuilder):
    """TFDS builder for the English chatterbot-corpus Q/A pairs."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Adjacent pairs of the English conversations, topic as category.",
        "1.1.0": "Conversations that are not lists (one plain string in trivia.yml) are skipped "
        "instead of split into one-character turns; blank turns are dropped.",
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(
                {
                    "question": tfds.features.Text(),
                    "answer": tfds.features.Text(),
                    "category": tfds.features.Text(),
                }
            ),
            supervised_keys=("question", "answer"),
            homepage="https://github.com/gunthercox/chatterbot-corpus",
            license="BSD-3-Clause",
        )

    def _split_generators(self, dl_manager: Any) -> dict[str, Any]:
        del dl_manager  # nothing to download: the data is an installed package
        return {"train": self._generate_examples(corpus_directory())}

    def _generate_examples(self, directory: Path) -> Iterator[tuple[str, dict[str, str]]]:
        yield from iter_pairs(directory)
