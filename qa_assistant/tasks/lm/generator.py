"""Raw questions in, the language model's answers out: the tf.functions that evaluation and the export share.

`LanguageModelGenerator` binds a causal LM to its chat prompt and, when
grounding is on, to a retriever over the user's answers
(`tasks/lm/grounding.py`). Its three graph functions have the same
signatures as the encoder-decoder's (`tasks/generation/generator.py`), so
`qa-assistant ask`, `evaluate` and TF Serving clients treat both alike:

* `answer(question)`: the configured decoding options; outputs `answer`,
  its log-probability `score`, `length` (tokens, end token included),
  `finished` (false when cut at the length limit), `top_k_answers` /
  `top_k_scores` (beam hypotheses; one otherwise) and, when grounded,
  `grounding_answers` / `grounding_scores` (the notes the prompt held, best
  first) and, with a routing rule, `quoted` (whether the answer is the
  first note word for word, `lm.quote_above`; see `tasks/lm/quoting.py`) and
  `declined` (whether the request was declined as off-topic,
  `lm.decline_below`; see `tasks/lm/declining.py`) with its negation
  `answered`, as a retrieval export names it;
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
from qa_assistant.models.decoding import SearchOptions, hypothesis_count, search
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
        answer_max_tokens: most answer tokens that `score` reads (and that a
            quoted answer's score and length count).
        quote_above: with a retriever, a request whose first note scores at
            least this is answered with that note, word for word (its
            `score` is the note's log-probability under the model, as
            `score` computes it); `None`: the model always writes the answer.
            When every request of a batch is quoted, nothing is generated.
        decline_below: with a retriever, a request whose first note scores
            below this (or that has no note) is answered `decline_answer`
            (its `score` is that answer's log-probability under the model);
            it takes precedence over quoting. `None`: never declined.
        decline_answer: the reply to a declined request.
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
        quote_above: float | None = None,
        decline_below: float | None = None,
        decline_answer: str = "I don't know.",
    ) -> None:
        self.model = model
        self.prompt = prompt
        self.retriever = retriever
        self.grounding_k = grounding_k
        self.max_new_tokens = max_new_tokens
        self.answer_max_tokens = answer_max_tokens
        self.quote_above = quote_above if retriever is not None else None
        self.decline_below = decline_below if retriever is not None else None
        self.decline_answer = decline_answer
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
        prompt = self.prompt.prompt_ids(question, notes)
        if self.quote_above is None and self.decline_below is None:
            outputs = self._search(question, prompt, options)
        else:
            outputs = self._routed(question, prompt, options, notes[:, 0], note_scores[:, 0])
        if notes is not None:
            outputs.update(grounding_answers=notes, grounding_scores=note_scores)
        return outputs

    def _search(
        self, question: tf.Tensor, prompt: tf.RaggedTensor, options: SearchOptions
    ) -> dict[str, tf.Tensor]:
        """The model's own answers to the prompts (`search_outputs`)."""
        ids, mask = left_pad(prompt)
        result = search(
            self.decoder,
            {"token_ids": ids, "padding_mask": mask},
            options,
            start_id=self.prompt.start_id,
            end_id=self.prompt.end_id,
            row_keys=clean_text(question),
        )
        return search_outputs(result, self._detokenize(result.tokens), self.prompt.end_id)

    def _routed(
        self,
        question: tf.Tensor,
        prompt: tf.RaggedTensor,
        options: SearchOptions,
        note: tf.Tensor,
        note_score: tf.Tensor,
    ) -> dict[str, tf.Tensor]:
        """`_search`'s outputs, with a fixed answer on the rows that a routing rule takes.

        A row whose first note scores below `decline_below` (or that has no
        note) is answered `decline_answer`; one whose first note scores at
        least `quote_above` is answered that note. A fixed row's
        `top_k_answers` / `top_k_scores` hold its answer alone (`""` and -inf
        after it, as wide as the search's hypotheses). A batch of fixed rows
        only is not decoded.
        """
        never = tf.zeros_like(note_score, dtype=tf.bool)
        missing = tf.equal(note_score, float("-inf"))  # no note: never quoted, always declined
        declined = never if self.decline_below is None else ~(note_score >= self.decline_below) | missing
        quoted = never if self.quote_above is None else (note_score >= self.quote_above) & ~declined
        fixed_rows = quoted | declined
        text = tf.where(declined, tf.constant(self.decline_answer), note)

        def scored() -> tuple[tf.Tensor, tf.Tensor]:
            found = self._teacher_forced(prompt, self.prompt.answer_ids(text, self.answer_max_tokens))
            return found["log_probability"], tf.cast(found["tokens"], tf.int32)

        def unscored() -> tuple[tf.Tensor, tf.Tensor]:  # no fixed row: the prompts need no extra pass
            return tf.zeros_like(note_score), tf.zeros_like(note_score, dtype=tf.int32)

        log_probability, tokens = tf.cond(tf.reduce_any(fixed_rows), scored, unscored)
        fixed = {
            "answer": text,
            "score": log_probability,
            "length": tokens,
            "finished": tf.ones_like(fixed_rows),  # a whole note or the decline answer
        }

        first = tf.range(hypothesis_count(options))[None, :] == 0
        fixed_top = {
            "top_k_answers": tf.where(first, text[:, None], ""),
            "top_k_scores": tf.where(first, fixed["score"][:, None], float("-inf")),
        }

        def fixed_only() -> dict[str, tf.Tensor]:
            return {**fixed, **fixed_top}

        def mixed() -> dict[str, tf.Tensor]:
            generated = self._search(question, prompt, options)
            return {
                **{k: tf.where(fixed_rows, v, generated[k]) for k, v in fixed.items()},
                **{k: tf.where(fixed_rows[:, None], v, generated[k]) for k, v in fixed_top.items()},
            }

        outputs = tf.cond(tf.reduce_all(fixed_rows), fixed_only, mixed)
        # `answered` is a retrieval export's name for the same fact: one check serves both exports.
        return {**outputs, "quoted": quoted, "declined": declined, "answered": ~declined}

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
        return self._teacher_forced(prompt, self.prompt.answer_ids(answer, self.answer_max_tokens))

    def _teacher_forced(self, prompt: tf.RaggedTensor, answers: tf.RaggedTensor) -> dict[str, tf.Tensor]:
        """`teacher_forced_scores` of answer ids after their prompts, summed per row.

        The vocabulary projection runs on the answer's positions only: a
        grounded prompt is hundreds of tokens, and logits over the whole
        sequence (`[rows, length, 49,152]` for SmolLM2) would take GBs.
        """
        inputs, targets = shifted_pair(prompt, answers)
        targets = targets.to_tensor(0)
        backbone = self.model.backbone
        hidden = backbone(
            {"token_ids": inputs.to_tensor(0), "padding_mask": tf.ones_like(inputs).to_tensor(0) > 0},
            training=False,
        )
        scored = tf.where(targets != 0)  # [tokens, (row, position)]
        # As the causal LM computes its logits from the backbone's output.
        logits = backbone.token_embedding(tf.gather_nd(hidden, scored), reverse=True)
        per_token = teacher_forced_scores(logits[:, None], tf.gather_nd(targets, scored)[:, None], None)
        rows, count = tf.cast(scored[:, 0], tf.int32), tf.shape(targets)[0]
        return {k: tf.math.unsorted_segment_sum(v, rows, count) for k, v in per_token.items()}


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
