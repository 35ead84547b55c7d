"""Decoding: greedy, beam search and top-k / top-p sampling in one TensorFlow loop.

`search` drives any catalogue decoder (`start` once, `step` per token) with
`tf.while_loop` and core TensorFlow ops only, so the very same graph runs in
Python and inside an exported SavedModel, and every option is a tensor: an
export can take the strategy, beam width, top-k, top-p, temperature, seed
and length per request.

All strategies share one loop over `width` hypotheses per question (1
unless beam search). Each step scores the next token, lets the strategy
choose `(parent hypothesis, token)` pairs, and reorders the decoder state by
parent. A hypothesis that wrote the end token is finished: it continues
with padding at no cost, so its score is final.

Scores are log-probabilities under the model (temperature 1), summed over
the generated tokens including the end token.

Three guards against degenerate answers apply to every strategy, as in
ParlAI and Hugging Face generation: `no_repeat_ngram` bans any token that
would repeat an n-gram the hypothesis already holds, `min_length` bans the
end token before that many tokens, and `repetition_penalty` (CTRL) makes
tokens the hypothesis already holds less likely. Bans never change a score;
the penalty only steers the choice (beam search ranks by the penalised
log-probabilities), so a score stays the model's own log-probability.

Sampling is a pure function of (question, seed, step): each row draws its
uniform number from a hash of its question text, so a question gets the
same sample whatever else is in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import tensorflow as tf

from qa_assistant.config import DecodingConfig
from qa_assistant.config.schema import MAX_BEAM_WIDTH

STRATEGIES = ("greedy", "beam", "sample")
_NEG = -1e9  # "impossible" log-probability; finite so that sums never give NaN
_HASH_BUCKETS = 1 << 24


class SearchOptions(NamedTuple):
    """Decoding options as scalar tensors (so a request can change them)."""

    strategy: tf.Tensor  # int32 index into STRATEGIES
    beam_width: tf.Tensor  # int32
    top_k: tf.Tensor  # int32, 0 = no limit
    top_p: tf.Tensor  # float32, 1 = no limit
    temperature: tf.Tensor  # float32, 0 = most likely token
    seed: tf.Tensor  # int64
    max_length: tf.Tensor  # int32
    length_penalty: tf.Tensor  # float32, beam search ranks by log-probability / ((5 + length) / 6) ** this
    no_repeat_ngram: tf.Tensor  # int32, n-grams of this size never repeat; 0 = off
    repetition_penalty: tf.Tensor  # float32, > 0; logits of tokens already written / or * this; 1 = off
    min_length: tf.Tensor  # int32, tokens before the end token may come (at least 1: no empty answer)

    @classmethod
    def from_config(cls, config: DecodingConfig, max_length: int) -> SearchOptions:
        """Constants from the `decoding` config; `max_length` when it leaves the length unset."""
        return cls(
            strategy=tf.constant(STRATEGIES.index(config.strategy), tf.int32),
            beam_width=tf.constant(config.beam_width, tf.int32),
            top_k=tf.constant(config.top_k, tf.int32),
            top_p=tf.constant(config.top_p, tf.float32),
            temperature=tf.constant(config.temperature, tf.float32),
            seed=tf.constant(config.seed, tf.int64),
            max_length=tf.constant(config.max_length or max_length, tf.int32),
            length_penalty=tf.constant(config.length_penalty, tf.float32),
            no_repeat_ngram=tf.constant(config.no_repeat_ngram, tf.int32),
            repetition_penalty=tf.constant(config.repetition_penalty, tf.float32),
            min_length=tf.constant(config.min_length, tf.int32),
        )

    def override(self, strategy: tf.Tensor, *numbers: tf.Tensor) -> SearchOptions:
        """Per-request values: an empty strategy or a negative number keeps this option.

        Args:
            strategy: `tf.string` scalar, one of `STRATEGIES` or `""`.
            numbers: beam_width, top_k, top_p, temperature, seed, max_length,
                length_penalty, no_repeat_ngram, repetition_penalty, min_length.

        Raises:
            tf.errors.InvalidArgumentError: (when run) an unknown strategy, or a
                repetition penalty of 0.
        """
        known = tf.equal(strategy, tf.constant(STRATEGIES))
        check = tf.debugging.Assert(
            tf.logical_or(tf.equal(strategy, ""), tf.reduce_any(known)),
            ["unknown decoding strategy", strategy, "expected one of:", *STRATEGIES],
        )
        with tf.control_dependencies([check]):
            chosen = tf.where(
                tf.equal(strategy, ""), self.strategy, tf.cast(tf.argmax(tf.cast(known, tf.int32)), tf.int32)
            )
        values = [chosen]
        for default, given in zip(self[1:], numbers, strict=True):
            given = tf.cast(given, default.dtype)
            values.append(tf.where(given < 0, default, given))
        options = SearchOptions(*values)
        # Negative keeps the default, which the config validated; only 0 gets here unchecked.
        positive = tf.debugging.Assert(
            options.repetition_penalty > 0,
            ["repetition_penalty must be positive (1 = off); got", options.repetition_penalty],
        )
        with tf.control_dependencies([positive]):
            return options._replace(repetition_penalty=tf.identity(options.repetition_penalty))


def hypothesis_count(options: SearchOptions) -> tf.Tensor:
    """`int32` scalar: the hypotheses `search` keeps per question (the beam width for beam search, else 1)."""
    is_beam = tf.equal(options.strategy, STRATEGIES.index("beam"))
    return tf.where(is_beam, tf.clip_by_value(options.beam_width, 1, MAX_BEAM_WIDTH), 1)


class SearchResult(NamedTuple):
    """What `search` returns, best hypothesis first."""

    tokens: tf.Tensor  # int32 [batch, width, max_length], end token included, 0 after it
    scores: tf.Tensor  # float32 [batch, width], summed log-probabilities


def search(
    decoder: Any,
    encoder_outputs: dict[str, tf.Tensor],
    options: SearchOptions,
    *,
    start_id: int,
    end_id: int,
    row_keys: tf.Tensor,
    banned_ids: tuple[int, ...] = (),
) -> SearchResult:
    """Generates token ids for a batch of encoded questions.

    Args:
        decoder: a catalogue decoder (`start`, `step`, optional `max_positions`).
        encoder_outputs: the encoder's outputs for the batch.
        options: strategy and its settings.
        start_id: the token that starts every answer.
        end_id: the token that ends an answer.
        row_keys: one string per question (its text) that seeds sampling.
        banned_ids: tokens never generated besides padding (id 0) and `start_id`.

    Returns:
        Tokens and scores of `width` hypotheses per question (1 unless beam
        search), best first.

    Example:

    >>> from qa_assistant.config import load_config
    >>> from qa_assistant.models.decoders import build_seq2seq
    >>> model = build_seq2seq(load_config([], ["encoder.units=8", "embedding.dim=4"]), 30, 20)
    >>> encoded = model.get_layer("encoder")(tf.constant([[5, 6, 7]]))
    >>> options = SearchOptions.from_config(DecodingConfig(strategy="beam", beam_width=3), max_length=5)
    >>> result = search(
    ...     model.get_layer("decoder"), encoded, options, start_id=2, end_id=3, row_keys=tf.constant(["q"])
    ... )
    >>> tuple(result.tokens.shape), tuple(result.scores.shape)  # [questions, beams, max_length]
    ((1, 3, 5), (1, 3))
    """
    return _Search(decoder, encoder_outputs, options, start_id, end_id, row_keys, banned_ids).run()


@dataclass
class _Search:
    """The state of one `search` call (its arguments): the loop's constants, condition and body."""

    decoder: Any
    encoder_outputs: dict[str, tf.Tensor]
    options: SearchOptions
    start_id: int
    end_id: int
    row_keys: tf.Tensor
    banned_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        decoder, options, encoder_outputs = self.decoder, self.options, self.encoder_outputs
        self.banned_ids = (0, self.start_id, *self.banned_ids)
        self.batch = tf.shape(encoder_outputs["padding_mask"])[0]
        self.width = hypothesis_count(options)
        self.length = tf.maximum(options.max_length, 0)
        if getattr(decoder, "max_positions", None):
            self.length = tf.minimum(self.length, decoder.max_positions)
        state, memory = decoder.start(encoder_outputs, self.length)
        self.state = tf.nest.map_structure(self._tile, state)
        self.memory = tf.nest.map_structure(self._tile, memory)

    def _tile(self, t: tf.Tensor) -> tf.Tensor:
        return tf.repeat(t, self.width, axis=0)  # row b * width + w

    def run(self) -> SearchResult:
        batch, width, length = self.batch, self.width, self.length
        alive = tf.tile(tf.where(tf.range(width) == 0, 0.0, _NEG)[None], [batch, 1])  # beams start as copies
        loop = (
            tf.constant(0),
            tf.fill([batch * width], tf.constant(self.start_id, tf.int32)),
            self.state,
            tf.zeros([batch, width, length], tf.int32),
            alive,  # scores: the model's log-probabilities
            alive,  # ranks: what beam search sorts by (penalised by repetition_penalty)
            tf.zeros([batch, width], tf.bool),
        )
        # The hypothesis count is only known at run time when the strategy is.
        invariants = (
            tf.TensorShape([]),
            tf.TensorShape([None]),
            tf.nest.map_structure(lambda t: t.shape, self.state),
            tf.TensorShape([None, None, None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
            tf.TensorShape([None, None]),
        )
        _, _, _, tokens, scores, _, _ = tf.while_loop(
            self._cond, self._body, loop, shape_invariants=invariants
        )
        return SearchResult(tokens, scores)

    def _cond(self, step: tf.Tensor, *rest: Any) -> tf.Tensor:
        finished = rest[-1]
        return tf.logical_and(step < self.length, tf.logical_not(tf.reduce_all(finished)))

    def _body(
        self,
        step: tf.Tensor,
        previous: tf.Tensor,
        state: Any,
        tokens: tf.Tensor,
        scores: tf.Tensor,
        ranks: tf.Tensor,
        finished: tf.Tensor,
    ) -> tuple[Any, ...]:
        logits, state = self.decoder.step(previous, step, state, self.memory)
        logits = tf.reshape(tf.cast(logits, tf.float32), [self.batch, self.width, -1])
        # Scores are the model's own log-probabilities, taken before banning and
        # penalising: banned tokens are never chosen, but the others are not renormalised.
        log_probs = tf.nn.log_softmax(logits)
        banned = self._banned(step, tokens, tf.shape(logits)[-1])
        logits = _penalise(logits, tokens, self.options.repetition_penalty)
        choice = tf.nn.log_softmax(logits)  # = log_probs when the penalty is 1
        pad_only = tf.where(tf.range(tf.shape(logits)[-1]) == 0, 0.0, _NEG)
        logits, log_probs, choice = (
            tf.where(finished[..., None], pad_only, tf.where(banned, _NEG, x))
            for x in (logits, log_probs, choice)
        )
        options = self.options
        parent, token, scores, ranks = tf.switch_case(
            options.strategy,
            [
                lambda: _greedy(choice, log_probs, scores),
                lambda: _beam(choice, log_probs, scores, ranks, self.width, tokens, finished, options),
                lambda: _sample(logits, log_probs, scores, finished, options, step, self.row_keys),
            ],
        )
        rows = tf.reshape(parent + tf.range(self.batch)[:, None] * self.width, [-1])
        state = tf.nest.map_structure(lambda t: tf.gather(t, rows), state)
        tokens = tf.gather(tokens, parent, batch_dims=1)
        tokens += tf.one_hot(step, self.length, dtype=tf.int32)[None, None, :] * token[..., None]
        finished = tf.logical_or(tf.gather(finished, parent, batch_dims=1), tf.equal(token, self.end_id))
        return step + 1, tf.reshape(token, [-1]), state, tokens, scores, ranks, finished

    def _banned(self, step: tf.Tensor, tokens: tf.Tensor, vocabulary_size: tf.Tensor) -> tf.Tensor:
        """`[batch, width, vocabulary]`: tokens that may not come next."""
        vocabulary = tf.range(vocabulary_size)
        fixed = tf.reduce_any(tf.equal(vocabulary[:, None], tf.constant(self.banned_ids)[None, :]), axis=1)
        # No empty answers, whatever min_length says: no training answer is empty, yet
        # an undertrained model may rate "[END]" first above every real word.
        too_short = step < tf.maximum(self.options.min_length, 1)
        banned = (fixed | (too_short & (vocabulary == self.end_id)))[None, None, :]
        banned = banned | _repeated_ngrams(tokens, step, self.options.no_repeat_ngram, vocabulary_size)
        # A hypothesis whose every token is banned (a tiny vocabulary, n-grams all used)
        # may end rather than write padding mid-answer.
        stuck = tf.reduce_all(banned, axis=-1, keepdims=True)
        return banned & ~(stuck & (vocabulary == self.end_id))


def _repeated_ngrams(
    tokens: tf.Tensor, step: tf.Tensor, n: tf.Tensor, vocabulary_size: tf.Tensor
) -> tf.Tensor:
    """`[batch, width, vocabulary]`: the tokens that would complete an n-gram already in `tokens`.

    `tokens[..., :step]` are each hypothesis' tokens so far; `n <= 0` bans nothing.
    """
    shape = tf.shape(tokens)
    length = shape[-1]
    flat = tf.reshape(tokens, [-1, length])
    prefix = tf.maximum(n - 1, 0)  # the n - 1 tokens an n-gram starts with
    starts = tf.range(length)
    offsets = tf.range(prefix)
    windows = tf.gather(flat, tf.minimum(starts[:, None] + offsets[None, :], length - 1), axis=1)
    suffix = tf.gather(flat, tf.clip_by_value(step - prefix + offsets, 0, length - 1), axis=1)
    # An n-gram starting at j repeats when its first n - 1 tokens equal the last n - 1
    # written; it must lie wholly before `step` (j + n - 1 < step).
    same = tf.reduce_all(tf.equal(windows, suffix[:, None, :]), axis=-1)
    repeats = same & (starts <= step - n)[None, :] & (n > 0)
    following = tf.gather(flat, tf.minimum(starts + prefix, length - 1), axis=1)
    hits = tf.where(repeats)  # [k, 2]: (row, start)
    indices = tf.stack([hits[:, 0], tf.cast(tf.gather_nd(following, hits), tf.int64)], axis=1)
    rows = tf.shape(flat, out_type=tf.int64)[0]
    counts = tf.scatter_nd(indices, tf.ones_like(hits[:, 0]), [rows, tf.cast(vocabulary_size, tf.int64)])
    return tf.reshape(counts > 0, [shape[0], shape[1], vocabulary_size])


def _penalise(logits: tf.Tensor, tokens: tf.Tensor, penalty: tf.Tensor) -> tf.Tensor:
    """CTRL's repetition penalty: logits of tokens already in the hypothesis / penalty (if > 0) or * penalty."""
    shape = tf.shape(logits)
    rows = shape[0] * shape[1]
    flat = tf.reshape(tokens, [rows, -1])
    row_ids = tf.repeat(tf.range(rows), tf.shape(flat)[1])
    indices = tf.stack([row_ids, tf.reshape(flat, [-1])], axis=1)
    written = tf.scatter_nd(indices, tf.ones_like(row_ids), [rows, shape[2]]) > 0
    written = tf.reshape(written, shape)  # padding (id 0) counts too: it is banned anyway
    penalised = tf.where(logits > 0, logits / penalty, logits * penalty)
    return tf.where(written, penalised, logits)


def _greedy(
    choice: tf.Tensor, log_probs: tf.Tensor, scores: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The most likely token (after the guards) of the single hypothesis."""
    token = tf.argmax(choice[:, 0], axis=-1, output_type=tf.int32)
    scores = scores + tf.gather(log_probs[:, 0], token, batch_dims=1)[:, None]
    return tf.zeros_like(token)[:, None], token[:, None], scores, scores


def _beam(
    choice: tf.Tensor,
    log_probs: tf.Tensor,
    scores: tf.Tensor,
    ranks: tf.Tensor,
    width: tf.Tensor,
    tokens: tf.Tensor,
    finished: tf.Tensor,
    options: SearchOptions,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The `width` best (hypothesis, token) extensions of all hypotheses.

    Ranked by the summed `choice` log-probabilities (the model's, penalised
    for repetition) divided by the GNMT length penalty
    `((5 + length) / 6) ** length_penalty` (plain log-probability at 0, which
    favours short answers); the returned scores stay the model's log-probabilities.
    """
    vocabulary = tf.shape(log_probs)[-1]
    ranked = ranks[..., None] + choice
    lengths = tf.math.count_nonzero(tokens, axis=-1, dtype=tf.float32) + tf.where(finished, 0.0, 1.0)
    penalty = tf.pow((5.0 + lengths) / 6.0, options.length_penalty)
    flat = [tf.shape(ranked)[0], -1]
    best = tf.math.top_k(tf.reshape(ranked / penalty[..., None], flat), k=width)
    chosen = tf.gather(tf.reshape(scores[..., None] + log_probs, flat), best.indices, batch_dims=1)
    chosen_ranks = tf.gather(tf.reshape(ranked, flat), best.indices, batch_dims=1)
    return best.indices // vocabulary, best.indices % vocabulary, chosen, chosen_ranks


def _sample(
    logits: tf.Tensor,
    log_probs: tf.Tensor,
    scores: tf.Tensor,
    finished: tf.Tensor,
    options: SearchOptions,
    step: tf.Tensor,
    row_keys: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """A token drawn from the temperature-scaled, top-k and top-p filtered distribution."""
    x = logits[:, 0]
    vocabulary = tf.shape(x)[-1]
    x = x / tf.maximum(options.temperature, 1e-6)
    k = tf.where(options.top_k > 0, tf.minimum(options.top_k, vocabulary), vocabulary)
    kth_best = tf.math.top_k(x, k=k).values[:, -1:]
    x = tf.where(x < kth_best, _NEG, x)
    probabilities = tf.nn.softmax(x)
    ranked = tf.sort(probabilities, direction="DESCENDING")
    before = tf.cumsum(ranked, axis=-1, exclusive=True)
    # Keep the smallest set of most likely tokens whose mass reaches top_p
    # (always the most likely one); ties at the threshold are all kept.
    kept = tf.logical_or(before < options.top_p, tf.range(vocabulary)[None] == 0)
    threshold = tf.reduce_min(tf.where(kept, ranked, 2.0), axis=-1, keepdims=True)
    x = tf.where(probabilities >= threshold, x, _NEG)
    drawn = _inverse_cdf(tf.nn.softmax(x), _uniform(row_keys, options.seed, step))
    most_likely = tf.argmax(x, axis=-1, output_type=tf.int32)
    token = tf.where(options.temperature > 0, drawn, most_likely)
    token = tf.where(finished[:, 0], 0, token)
    scores = scores + tf.gather(log_probs[:, 0], token, batch_dims=1)[:, None]
    return tf.zeros_like(token)[:, None], token[:, None], scores, scores


def _uniform(row_keys: tf.Tensor, seed: tf.Tensor, step: tf.Tensor) -> tf.Tensor:
    """One number in (0, 1) per row, a deterministic hash of (row key, seed, step)."""
    text = tf.strings.join(
        [row_keys, tf.strings.as_string(seed), tf.strings.as_string(step)], separator="\x00"
    )
    bucket = tf.strings.to_hash_bucket_fast(text, _HASH_BUCKETS)
    return (tf.cast(bucket, tf.float32) + 0.5) / _HASH_BUCKETS


def _inverse_cdf(probabilities: tf.Tensor, uniform: tf.Tensor) -> tf.Tensor:
    """The token whose cumulative-probability interval holds `uniform` (never a zero-probability one)."""
    cdf = tf.cumsum(probabilities, axis=-1)
    target = uniform[:, None] * cdf[:, -1:]
    token = tf.reduce_sum(tf.cast(cdf <= target, tf.int32), axis=-1)
    vocabulary = tf.shape(probabilities)[-1]
    positive = tf.cast(probabilities > 0, tf.int32)
    last_positive = vocabulary - 1 - tf.argmax(tf.reverse(positive, [-1]), axis=-1, output_type=tf.int32)
    return tf.minimum(token, last_positive)
