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

import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from qa_assistant.config import answer_limit, check_decoding_options, load_config
from qa_assistant.errors import UserError
from qa_assistant.layout import CONFIG_FILE, EXTRA_DIR, resolve_export
from qa_assistant.serving.savedmodel import INPUT_NAME, SIGNATURE, load_saved_model

# The signature of a generation export that takes decoding options per request.
OPTIONS_SIGNATURE = "generate"


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


class Assistant:
    """Loads an export once and answers questions with it.

    Args:
        path: `saved_models/NAME` (newest version) or a version directory.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = resolve_export(path)
        expected = "expected an export written by `qa-assistant export`"
        try:
            self._model = load_saved_model(self.path)
        except (OSError, ValueError, tf.errors.OpError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(
                f"'{self.path}' could not be loaded as a SavedModel ({first}); {expected}"
            ) from None
        self._serve = self._model.signatures.get(SIGNATURE)
        if self._serve is None:
            raise UserError(f"'{self.path}' has no '{SIGNATURE}' signature; {expected}")
        inputs = sorted(self._serve.structured_input_signature[1])
        if inputs != [INPUT_NAME] or not {"answer", "score"} <= set(self._serve.structured_outputs):
            raise UserError(
                f"'{self.path}' serves inputs {inputs} and outputs {self.output_names}; expected the input "
                f"'{INPUT_NAME}' and the outputs 'answer' and 'score' ({expected})"
            )

    @functools.cached_property
    def _answer_limit(self) -> int | None:
        """The longest answer a generation export may give (`answer_limit` of its config), read once."""
        saved = self.path / EXTRA_DIR / CONFIG_FILE
        return answer_limit(load_config([saved])) if saved.is_file() else None

    @property
    def output_names(self) -> list[str]:
        return sorted(self._serve.structured_outputs)

    def signature(self, name: str) -> Any | None:
        """Another signature of the export (e.g. a generator's `score`), or `None`."""
        return self._model.signatures.get(name)

    def tracked(self, name: str) -> Any | None:
        """An object the export tracks by `name` (a retrieval export's answer `bank`), or `None`."""
        return getattr(self._model, name, None)

    def raw(self, questions: list[str], **options: Any) -> dict[str, np.ndarray]:
        """The signature's outputs as NumPy arrays (strings stay bytes).

        `options` (a generation export's decoding options, e.g.
        `strategy="beam", beam_width=8`) go to its `generate` signature.

        Raises:
            UserError: options for an export that takes none, or unknown ones.
        """
        question = tf.constant([_utf8(q) for q in questions], dtype=tf.string)
        outputs = self._with_options(question, options) if options else self._serve(**{INPUT_NAME: question})
        return {k: v.numpy() for k, v in outputs.items()}

    def check_options(self, options: dict[str, Any]) -> dict[str, tf.Tensor]:
        """The `generate` signature's inputs for decoding `options`, checked (no question yet).

        `qa-assistant chat` calls it before its first prompt, so that a bad option is
        refused at once rather than after the first question.

        Raises:
            UserError: an export that takes no options, an unknown option, or a value the
                config's `decoding` section would refuse.
        """
        generate = self.signature(OPTIONS_SIGNATURE)
        if generate is None:
            raise UserError(
                f"'{self.path}' takes no decoding options ({', '.join(sorted(options))}); "
                "only a generation export does"
            )
        specs = {k: v for k, v in generate.structured_input_signature[1].items() if k != INPUT_NAME}
        unknown = sorted(set(options) - set(specs))
        if unknown:
            raise UserError(
                f"unknown decoding option(s) {', '.join(unknown)}; expected any of: {', '.join(sorted(specs))}"
            )
        options = check_decoding_options(options, self._answer_limit)
        inputs = {}
        for name, spec in specs.items():
            # Left out: "" or -1, which the export reads as "keep the exported setting".
            value = options.get(name, "" if spec.dtype == tf.string else -1)
            try:
                inputs[name] = tf.constant(value, dtype=spec.dtype)
                if inputs[name].shape.rank != 0:
                    raise ValueError("not one value")
                if spec.dtype.is_integer and not spec.dtype.min <= value <= spec.dtype.max:
                    raise ValueError("out of range")  # tf.constant would wrap it around
            except (TypeError, ValueError):
                raise UserError(
                    f"decoding option '{name}' expects {spec.dtype.name}, one value in its range; got {value!r}"
                ) from None
        return inputs

    def _with_options(self, question: tf.Tensor, options: dict[str, Any]) -> dict[str, tf.Tensor]:
        inputs = self.check_options(options)
        try:
            return self.signature(OPTIONS_SIGNATURE)(**{INPUT_NAME: question}, **inputs)
        except tf.errors.InvalidArgumentError as error:
            raise UserError(f"the export refused the decoding options: {_assertion(error.message)}") from None

    def ask_many(
        self,
        questions: list[str],
        top_k: int | None = None,
        decoding: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> list[Answer]:
        """Answers a batch of raw questions, keeping `top_k` alternatives (all: `None`).

        Decoding options (see `raw`) come as keywords or in `decoding`, merged; sampling's
        own `top_k` can only come in `decoding` (`decoding={"top_k": 5}`), since the
        keyword names the alternatives kept.
        """
        if not questions:
            return []
        out = self.raw(questions, **{**(decoding or {}), **options})
        answers = []
        for i, question in enumerate(questions):
            ranked = []
            if "top_k_answers" in out:  # only tasks that rank answers (or keep beams) return them
                # A place scored -inf holds no answer (a quoted note stands alone among the beams).
                ranked = [
                    (text, score)
                    for text, score in zip(
                        _texts(out["top_k_answers"][i]), out["top_k_scores"][i].tolist(), strict=True
                    )
                    if math.isfinite(score)
                ]
            extra = {
                k: _value(v[i])
                for k, v in out.items()
                if k not in ("answer", "score", "top_k_answers", "top_k_scores")
            }
            answers.append(
                Answer(
                    question=_utf8(question).decode("utf-8", errors="replace"),  # as the model read it
                    answer=out["answer"][i].decode("utf-8"),
                    score=float(out["score"][i]),
                    alternatives=ranked[:top_k] if top_k else ranked,
                    extra=extra,
                )
            )
        return answers

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        decoding: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Answer:
        """Answers one raw question (`top_k`, `decoding`, `options`: see `ask_many`)."""
        return self.ask_many([question], top_k=top_k, decoding=decoding, **options)[0]


def _utf8(text: str) -> bytes:
    """A request as UTF-8 bytes. Invalid bytes in a command-line argument or on stdin
    arrive as lone surrogates; they go back to bytes, which the export reads as U+FFFD."""
    try:
        return text.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return text.encode("utf-8", errors="replace")


def _texts(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8") for v in np.asarray(values).reshape(-1)]


def _value(value: Any) -> Any:
    """An output row as JSON values: text decoded; a non-finite score (an empty grounding place) as `None`."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, np.ndarray):
        return _texts(value) if value.dtype.kind in "OS" else _finite(value.tolist())
    return _finite(value.item() if hasattr(value, "item") else value)


def _finite(value: Any) -> Any:
    """`value` (nested lists) with every non-finite float replaced by `None` (JSON has no infinity)."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _assertion(message: str) -> str:
    """The `tf.debugging.Assert` text in a graph error (`[a] [b]` -> `a b`), else its first line."""
    for line in message.splitlines():
        if "assertion failed:" in line:
            return re.sub(r"\[([^\]]*)\]", r"\1", line.split("assertion failed:", 1)[1]).strip()
    return message.strip().splitlines()[0] if message.strip() else "invalid argument"
