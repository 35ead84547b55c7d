"""`Assistant`: answers questions from an exported SavedModel.

Only TensorFlow (and tensorflow-text, for the NFKC op) is needed to use an
export; this class is a convenience around `tf.saved_model.load` that picks
the newest version of a model directory and turns outputs into Python values.

Example:

>>> bot = Assistant("saved_models/chatterbot")  # doctest: +SKIP
>>> bot.ask("What is AI?").answer  # doctest: +SKIP
'Artificial Intelligence is the branch of engineering and science ...'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.serving.export import INPUT_NAME, load_signature, version_numbers


@dataclass
class Answer:
    """One answer with its score and the ranked alternatives."""

    question: str
    answer: str
    score: float
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "score": self.score,
            "top_k": [{"answer": a, "score": s} for a, s in self.alternatives],
            **self.extra,
        }


def resolve_export(path: str | Path) -> Path:
    """A SavedModel directory: `path` itself, or the newest integer version inside it.

    Raises:
        UserError: `path` holds no SavedModel.
    """
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    numbers = [n for n in version_numbers(path) if (path / str(n) / "saved_model.pb").is_file()]
    if numbers:
        return path / str(numbers[-1])
    raise UserError(
        f"'{path}' is not an exported model; expected saved_models/NAME or saved_models/NAME/VERSION "
        "(create one with: qa-assistant export --run RUN_DIR --name NAME)"
    )


class Assistant:
    """Loads an export once and answers questions with it.

    Args:
        path: `saved_models/NAME` (newest version) or a version directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = resolve_export(path)
        self._serve = load_signature(self.path)

    @property
    def output_names(self) -> list[str]:
        return sorted(self._serve.structured_outputs)

    def raw(self, questions: list[str]) -> dict[str, np.ndarray]:
        """The signature's outputs as NumPy arrays (strings stay bytes)."""
        outputs = self._serve(**{INPUT_NAME: tf.constant(list(questions), dtype=tf.string)})
        return {k: v.numpy() for k, v in outputs.items()}

    def ask_many(self, questions: list[str], top_k: int | None = None) -> list[Answer]:
        """Answers a batch of raw questions."""
        if not questions:
            return []
        out = self.raw(questions)
        answers = []
        for i, question in enumerate(questions):
            ranked = list(zip(_texts(out["top_k_answers"][i]), out["top_k_scores"][i].tolist(), strict=True))
            extra = {
                k: _value(v[i])
                for k, v in out.items()
                if k not in ("answer", "score", "top_k_answers", "top_k_scores")
            }
            answers.append(
                Answer(
                    question=question,
                    answer=out["answer"][i].decode("utf-8"),
                    score=float(out["score"][i]),
                    alternatives=ranked[:top_k] if top_k else ranked,
                    extra=extra,
                )
            )
        return answers

    def ask(self, question: str, top_k: int | None = None) -> Answer:
        """Answers one raw question."""
        return self.ask_many([question], top_k=top_k)[0]


def _texts(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") for v in np.asarray(values).reshape(-1)]


def _value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return _texts(value) if value.dtype.kind in "OS" else value.tolist()
    return value.item() if hasattr(value, "item") else value
