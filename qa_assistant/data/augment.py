"""EDA data augmentation of training questions: synonym replacement, random insertion, swap, deletion.

The four operations of "EDA: Easy Data Augmentation Techniques for Boosting
Performance on Text Classification Tasks" (Wei and Zou, 2019), with synonyms
taken from word vectors instead of a thesaurus: a word's synonyms are its
nearest neighbours (cosine similarity at least `augment.min_similarity`)
that are not stop-words. For each operation, `*_count` altered copies of
every training question are added, each changing `*_rate` of its words (at
least one):

* synonym replacement: replace that many non-stop-words that have synonyms
  by one of their synonyms;
* random insertion: insert a synonym of a random non-stop-word at a random
  position, that many times;
* random swap: swap two random words, that many times;
* random deletion: delete each word with probability `delete_rate` (one word
  is always kept).

Stop-words are never replaced and never used as synonyms. Only questions are
changed (answers are what the assistant says); copies equal to their original
or to another copy are dropped. Everything is drawn from one seeded
generator, so the same data and seed give the same augmented rows.

Example:

>>> import pandas as pd
>>> from qa_assistant.config import AugmentConfig
>>> frame = pd.DataFrame({"question": ["where is the office"], "answer": ["Lisbon"]})
>>> result = augment_questions(frame, AugmentConfig(swap_count=2), seed=0)
>>> len(result.frame) > 1, result.counts["swap"] > 0
(True, True)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
import tensorflow as tf

from qa_assistant.config import AugmentConfig
from qa_assistant.data.prepare import question_key
from qa_assistant.text.word_tokenizer import split_words

log = logging.getLogger(__name__)

OPERATIONS = ("synonym", "insert", "swap", "delete")

# Function words of English: never replaced, never offered as synonyms.
_STOP_WORDS_TEXT = """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves i'm you're it's don't can't won't isn't
    aren't wasn't doesn't didn't"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())

Synonyms = Callable[[str], list[str]]


class Neighbours(Protocol):
    """Nearest words in a vector space (`embeddings.VectorIndex`)."""

    def neighbours(
        self, word: str, k: int, *, allowed: Collection[str] | None = None
    ) -> list[tuple[str, float]]: ...


class NeighbourSynonyms:
    """A word's synonyms: its nearest neighbours in word vectors, stop-words and weak neighbours left out.

    Args:
        index: the word vectors.
        k: neighbours considered per word.
        min_similarity: lowest cosine similarity of a synonym.
        allowed: if given, only these words may be synonyms (e.g. the words
            a word-level model can represent).
    """

    def __init__(
        self,
        index: Neighbours,
        k: int = 5,
        min_similarity: float = 0.5,
        allowed: Collection[str] | None = None,
    ) -> None:
        self.index = index
        self.k = k
        self.min_similarity = min_similarity
        self.allowed = set(allowed) if allowed is not None else None
        self._cache: dict[str, list[str]] = {}

    def __call__(self, word: str) -> list[str]:
        if word not in self._cache:
            found = self.index.neighbours(word, self.k, allowed=self.allowed)
            self._cache[word] = [
                w for w, similarity in found if similarity >= self.min_similarity and is_content_word(w)
            ]
        return self._cache[word]


def is_content_word(word: str) -> bool:
    """Not a stop-word, and holds a letter or digit (punctuation is not replaced)."""
    return word.lower() not in STOP_WORDS and any(c.isalnum() for c in word)


@dataclass
class Augmentation:
    """The augmented training frame and what was added.

    Attributes:
        frame: the original rows, then the augmented copies.
        counts: copies added per operation.
        samples: `(operation, original, augmented)` examples to show.
        originals: each copy's question -> the question it was made from (a
            retrieval task's hard-negative mining gives a copy its original's
            right answers as well as its own row's).
    """

    frame: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    samples: list[tuple[str, str, str]] = field(default_factory=list)
    originals: dict[str, str] = field(default_factory=dict)


def augment_questions(
    frame: pd.DataFrame,
    config: AugmentConfig,
    *,
    synonyms: Synonyms | None = None,
    seed: int = 0,
    held_out: frozenset[str] = frozenset(),
) -> Augmentation:
    """Adds EDA copies of every question of `frame` (see the module docstring).

    Args:
        frame: the training split (cleaned `question` column, any others).
        config: rates and counts per operation; `samples` to keep.
        synonyms: word -> synonyms; needed when synonym replacement or
            insertion is on.
        seed: seeds every random choice.
        held_out: phrasing keys (`prepare.question_key`) of the validation
            and test questions: a copy that would recreate one is not made,
            or training would see a held-out question word for word.

    Returns:
        The augmented frame, counts and samples.

    Raises:
        ValueError: an operation that needs synonyms without `synonyms`.
    """
    if config.needs_vectors and synonyms is None:
        raise ValueError("synonym replacement and insertion need a synonyms function")
    plan = [
        (name, getattr(config, f"{name}_rate"), getattr(config, f"{name}_count"))
        for name in OPERATIONS
        if getattr(config, f"{name}_count") > 0
    ]
    rng = random.Random(seed)
    questions = frame["question"].tolist()
    made = _draw_copies(questions, plan, rng, synonyms)
    withheld = _reads_as([text for _, _, text in made], held_out)  # after the draws: the seed's copies stay
    made = [m for m, out in zip(made, withheld, strict=True) if not out]
    copies = frame.iloc[[row for row, _, _ in made]].copy()
    copies["question"] = [text for _, _, text in made]
    drawn = rng.sample(made, min(config.samples, len(made)))
    result = Augmentation(
        frame=pd.concat([frame, copies], ignore_index=True),
        counts={name: sum(1 for _, op, _ in made if op == name) for name, _, _ in plan},
        samples=[(op, questions[row], text) for row, op, text in drawn],
        originals={text: questions[row] for row, _, text in made},
    )
    log.info(
        "augmentation: %d training questions + %d copies (%s); %d left out that would read as "
        "a validation or test question",
        len(frame),
        len(copies),
        ", ".join(f"{name} {n}" for name, n in result.counts.items()),
        sum(withheld),
    )
    for name, original, text in result.samples:
        log.info("  %s: %r -> %r", name, original, text)
    return result


def _draw_copies(
    questions: list[str],
    plan: list[tuple[str, float, int]],
    rng: random.Random,
    synonyms: Synonyms | None,
) -> list[tuple[int, str, str]]:
    """Every distinct copy of every question, in draw order: (row, operation, text)."""
    tokens = split_words(tf.constant(questions, dtype=tf.string)).to_list() if questions else []
    made: list[tuple[int, str, str]] = []
    for row, words in enumerate(tokens):
        words = [w.decode("utf-8") for w in words]
        seen = {" ".join(words)}
        for name, rate, count in plan:
            for _ in range(count):
                text = " ".join(_apply(name, words, rate, rng, synonyms))
                if text and text not in seen:
                    seen.add(text)
                    made.append((row, name, text))
    return made


def _reads_as(texts: list[str], questions: frozenset[str]) -> list[bool]:
    """Whether each text has the phrasing key (`prepare.question_key`) of one of `questions`' keys."""
    if not questions or not texts:
        return [False] * len(texts)
    return question_key(pd.Series(texts, dtype=object)).isin(questions).tolist()


def _apply(
    name: str, words: list[str], rate: float, rng: random.Random, synonyms: Synonyms | None
) -> list[str]:
    changes = max(1, int(rate * len(words)))
    if name == "synonym":
        return synonym_replacement(words, changes, rng, synonyms)
    if name == "insert":
        return random_insertion(words, changes, rng, synonyms)
    if name == "swap":
        return random_swap(words, changes, rng)
    return random_deletion(words, rate, rng)


def synonym_replacement(words: list[str], changes: int, rng: random.Random, synonyms: Synonyms) -> list[str]:
    """Replaces up to `changes` non-stop-words that have synonyms by a random synonym each."""
    candidates = [i for i, w in enumerate(words) if is_content_word(w) and synonyms(w)]
    rng.shuffle(candidates)
    out = list(words)
    for i in candidates[:changes]:
        out[i] = rng.choice(synonyms(words[i]))
    return out


def random_insertion(words: list[str], changes: int, rng: random.Random, synonyms: Synonyms) -> list[str]:
    """Inserts, `changes` times, a synonym of a random non-stop-word at a random position."""
    candidates = [w for w in words if is_content_word(w) and synonyms(w)]
    out = list(words)
    if not candidates:
        return out
    for _ in range(changes):
        out.insert(rng.randint(0, len(out)), rng.choice(synonyms(rng.choice(candidates))))
    return out


def random_swap(words: list[str], changes: int, rng: random.Random) -> list[str]:
    """Swaps two random positions, `changes` times."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(changes):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], probability: float, rng: random.Random) -> list[str]:
    """Deletes each word with `probability`; keeps one random word if all would go."""
    if len(words) <= 1:
        return list(words)
    kept = [w for w in words if rng.random() >= probability]
    return kept or [rng.choice(words)]
