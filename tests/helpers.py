"""Test helpers: tiny generated Q/A data and tiny configs."""

from __future__ import annotations

import random
from pathlib import Path

from qa_assistant.config import Config, load_config

TOPICS = {
    "Our opening hours are 9 to 5, Monday to Friday.": ["hours", "opening times", "open"],
    "A basic plan costs 10 euros per month.": ["price", "cost", "fee"],
    "We are at 12 Harbour Street, Lisbon.": ["address", "location", "office"],
    "Write to help@example.com and we reply within a day.": ["email", "contact", "support"],
    "Refunds are paid within 14 days of a return.": ["refund", "money back", "return"],
    "Parcels ship within 2 working days.": ["shipping", "delivery", "dispatch"],
}
TEMPLATES = [
    "what is your {k}?",
    "tell me the {k}",
    "can you tell me about {k}",
    "i want to know the {k}",
    "{k} please",
    "what about the {k}",
    "how do i find your {k}",
    "question about {k}",
]


def faq_rows(seed: int = 0, per_answer: int = 8) -> list[dict[str, str]]:
    """A small FAQ: 6 answers, each asked in `per_answer` phrasings."""
    rng = random.Random(seed)
    rows = []
    for answer, keys in TOPICS.items():
        phrasings = {t.format(k=k) for t in TEMPLATES for k in keys}
        for question in rng.sample(sorted(phrasings), per_answer):
            rows.append({"question": question, "answer": answer})
    rng.shuffle(rows)
    return rows


TINY = [
    "text.max_length=8",
    "embedding.dim=8",
    "encoder.units=8",
    "train.epochs=2",
    "train.batch_size=8",
    "train.learning_rate=0.01",
    "train.early_stopping=0",
    "export.top_k=3",
]


def tiny_config(*overrides: str, train: str | Path | None = None, test: str | Path | None = None) -> Config:
    """A config that trains in seconds."""
    extra = list(overrides)
    if train is not None:
        extra.append(f"data.train={train}")
    if test is not None:
        extra.append(f"data.test={test}")
    return load_config([], [*TINY, *extra])


SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def faq_words() -> list[str]:
    """Every lower-cased word and punctuation mark of the generated FAQ."""
    import re

    words = set()
    for row in faq_rows(per_answer=24):
        for text in row.values():
            words.update(re.findall(r"\w+|[^\w\s]", text.lower()))
    return sorted(words)


def tiny_preset(directory: Path, *, layers: int = 2) -> Path:
    """A randomly initialised BERT backbone + tokenizer saved as a keras-hub preset."""
    import keras_hub

    vocabulary = SPECIAL_TOKENS + faq_words()
    keras_hub.models.BertBackbone(
        vocabulary_size=len(vocabulary),
        num_layers=layers,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=32,
        name="bert_backbone",  # not the next free auto-name: tests look the layer up by name
    ).save_to_preset(str(directory))
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(str(directory))
    return directory
