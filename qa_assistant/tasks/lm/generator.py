"""Raw questions in, the language model's answers out: the tf.functions that evaluation and the export share.

`LanguageModelGenerator` binds a causal LM to its chat prompt and, when
grounding is on, to a retriever over the user's answers
(`tasks/lm/grounding.py`). Its three graph functions have the same
signatures as the encoder-decoder's (`tasks/generation/generator.py`), so
`qa-assistant ask`, `evaluate` and TF Serving clients treat both alike:

* `answer(question)`: the configured decoding options; outputs `answer`,
  its log-probability `score`, `length` (tokens, end token included),
  `top_k_answers` / `top_k_scores` (beam hypotheses; one otherwise) and,
  when grounded, `grounding_answers` / `grounding_scores` (the notes the
  prompt held, best first);
* `generate(question, strategy, ...)`: the same with per-request options;
* `score(question, answer)`: teacher-forced log-probability of a given
  answer (perplexity from an export).

Decoding is `models/decoding.py`'s loop (greedy, beam, sampling, the
repetition guards) over the key/value cache of `tasks/lm/cached.py`.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from qa_assistant.config import DecodingConfig
from qa_assistant.models.decoding import SearchOptions, search
from qa_assistant.tasks.generation.generator import (
    ANSWER,
    OPTIONS,
    QUESTION,
    search_outputs,
    teacher_forced_scores,
)
from qa_assistant.tasks.lm.cached import CachedCausalLM, left_pad
from qa_assistant.tasks.lm.prompt import ChatPrompt, clean_text


class LanguageModelGenerator:
    """The graph functions that answer with a causal LM.

    Args:
        model: the keras-hub causal LM (`token_ids`, `padding_mask` -> logits).
        prompt: builds the chat prompts.
        decoding: default decoding options.
        max_new_tokens: tokens generated when `decoding.max_length` is unset,
            and the most a request may ask for.
        retriever: grounding: `retrieve(questions, k)` -> `(answers, scores)`
            `[batch, k]`, or `None` for ungrounded prompts.
        grounding_k: notes per prompt.
        answer_max_tokens: most answer tokens that `score` reads.
    """

    def __init__(
        self,
        model: keras.Model,
        prompt: ChatPrompt,
        decoding: DecodingConfig,
        max_new_tokens: int,
        retriever: Any | None = None,
        grounding_k: int = 0,
        answer_max_tokens: int = 256,
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.retriever = retriever
        self.grounding_k = grounding_k
        self.max_new_tokens = max_new_tokens
        self.answer_max_tokens = answer_max_tokens
        self.defaults = SearchOptions.from_config(decoding, max_new_tokens)
        self.decoder = CachedCausalLM(model, last_prompt_id=prompt.last_prompt_id)
        self.answer = tf.function(self._answer, input_signature=[QUESTION], autograph=False)
        self.generate = tf.function(self._generate, input_signature=[QUESTION, *OPTIONS], autograph=False)
        self.score = tf.function(self._score, input_signature=[QUESTION, ANSWER], autograph=False)

    @property
    def trackables(self) -> list[Any]:
        """What an export must track: the model, its tokenizer and the retriever."""
        return [t for t in (self.model, self.prompt.tokenizer, self.retriever) if t is not None]

    def _notes(self, question: tf.Tensor) -> tuple[tf.Tensor | None, tf.Tensor | None]:
        if self.retriever is None:
            return None, None
        return self.retriever.retrieve(question, self.grounding_k)

    def _answer(self, question: tf.Tensor) -> dict[str, tf.Tensor]:
        return self._run(question, self.defaults)

    def _generate(
        self, question: tf.Tensor, strategy: tf.Tensor, *numbers: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        return self._run(question, self.defaults.override(strategy, *numbers))

    def _run(self, question: tf.Tensor, options: SearchOptions) -> dict[str, tf.Tensor]:
        options = options._replace(max_length=tf.minimum(options.max_length, self.max_new_tokens))
        notes, note_scores = self._notes(question)
        ids, mask = left_pad(self.prompt.prompt_ids(question, notes))
        result = search(
            self.decoder,
            {"token_ids": ids, "padding_mask": mask},
            options,
            start_id=self.prompt.start_id,
            end_id=self.prompt.end_id,
            row_keys=clean_text(question),
        )
        outputs = search_outputs(result, self._detokenize(result.tokens))
        if notes is not None:
            outputs.update(grounding_answers=notes, grounding_scores=note_scores)
        return outputs

    def _detokenize(self, tokens: tf.Tensor) -> tf.Tensor:
        """`[batch, width]` strings of `[batch, width, length]` ids (end token and padding dropped)."""
        shape = tf.shape(tokens)
        flat = tf.reshape(tf.where(tokens == self.prompt.end_id, 0, tokens), [-1, shape[2]])
        texts = self.prompt.tokenizer.detokenize(tf.RaggedTensor.from_tensor(flat, padding=0))
        # A length limit can cut a character's bytes in two: the answer stays valid UTF-8.
        texts = tf.strings.unicode_transcode(
            texts, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        return tf.reshape(tf.strings.strip(texts), shape[:2])

    def _score(self, question: tf.Tensor, answer: tf.Tensor) -> dict[str, tf.Tensor]:
        notes, _ = self._notes(question)
        prompt = self.prompt.prompt_ids(question, notes)
        answers = self.prompt.answer_ids(answer, self.answer_max_tokens)
        inputs, targets = shifted_pair(prompt, answers)
        logits = self.model(
            {"token_ids": inputs.to_tensor(0), "padding_mask": tf.ones_like(inputs).to_tensor(0) > 0},
            training=False,
        )
        return teacher_forced_scores(logits, targets.to_tensor(0), None)  # byte-level BPE: nothing unknown


def shifted_pair(prompt: tf.RaggedTensor, answer: tf.RaggedTensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
    """`(inputs, targets)` for next-token training on `prompt + answer`: targets are 0 except on the answer.

    The loss ignores target 0, so it counts the answer's tokens (and the
    end-of-turn token that closes it) only, never the prompt's.

    >>> inputs, targets = shifted_pair(tf.ragged.constant([[5, 6, 7]]), tf.ragged.constant([[8, 2]]))
    >>> inputs.to_list(), targets.to_list()
    ([[5, 6, 7, 8]], [[0, 0, 8, 2]])
    """
    sequence = tf.concat([prompt, answer], axis=1)
    inputs = sequence[:, :-1]
    prompt_targets = tf.zeros_like(prompt[:, 1:])
    return inputs, tf.concat([prompt_targets, answer], axis=1)
