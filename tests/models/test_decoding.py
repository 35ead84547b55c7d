"""The decoding loop: greedy, beam search, sampling, options and their overrides.

Most tests drive `search` with a bigram "decoder" whose next-token
probabilities are a fixed table, so the right answer of each strategy can be
worked out by hand; the last ones use a real (untrained) encoder-decoder.
"""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.config import DecodingConfig, load_config
from qa_assistant.models.decoders import build_seq2seq
from qa_assistant.models.decoding import SearchOptions, _penalise, search

PAD, UNK, START, END, A, B = range(6)
GUARDS_OFF = {"no_repeat_ngram": 0, "repetition_penalty": 1.0}


class BigramDecoder:
    """Next-token probabilities depend only on the previous token: `table[previous]`."""

    def __init__(self, table: dict[int, dict[int, float]], vocabulary: int = 6) -> None:
        probabilities = np.full((vocabulary, vocabulary), 1e-12)
        for previous, row in table.items():
            for token, p in row.items():
                probabilities[previous, token] = p
        self.logits = tf.constant(np.log(probabilities), tf.float32)

    def start(self, encoder_outputs: dict, max_length: tf.Tensor) -> tuple[dict, dict]:
        batch = tf.shape(encoder_outputs["padding_mask"])[0]
        return {"steps": tf.zeros([batch], tf.int32)}, {}

    def step(self, tokens: tf.Tensor, index: tf.Tensor, state: dict, memory: dict) -> tuple[tf.Tensor, dict]:
        return tf.gather(self.logits, tokens), {"steps": state["steps"] + 1}


# Greedy takes A (0.55) and then keeps repeating A; the best answer is "B" (0.45 * 0.95).
TRAP = BigramDecoder(
    {
        START: {A: 0.55, B: 0.45},
        A: {A: 0.4, B: 0.3, END: 0.3},
        B: {END: 0.95, A: 0.05},
    }
)


def run(
    decoder, questions: int = 1, keys: list[str] | None = None, **options
) -> tuple[np.ndarray, np.ndarray]:
    # The guards are off unless a test asks for them: the hand-worked answers below assume the plain model.
    given = {**GUARDS_OFF, **options}
    config = DecodingConfig(**{k: v for k, v in given.items() if k != "max_length"})
    defaults = SearchOptions.from_config(config, max_length=options.get("max_length", 5))
    keys = keys or [f"question {i}" for i in range(questions)]
    encoded = {"padding_mask": tf.ones([len(keys), 3], tf.bool)}
    result = search(decoder, encoded, defaults, start_id=START, end_id=END, row_keys=tf.constant(keys))
    return result.tokens.numpy(), result.scores.numpy()


def test_greedy_follows_the_most_likely_token() -> None:
    tokens, scores = run(TRAP, strategy="greedy", max_length=4)
    assert tokens.shape == (1, 1, 4)
    assert tokens[0, 0].tolist() == [A, A, A, A]  # never ends: cut at max_length
    assert scores[0, 0] == pytest.approx(math.log(0.55) + 3 * math.log(0.4), abs=1e-5)


def test_beam_search_finds_the_more_likely_answer_greedy_misses() -> None:
    tokens, scores = run(TRAP, strategy="beam", beam_width=2, max_length=4)
    assert tokens.shape == (1, 2, 4)
    assert tokens[0, 0].tolist() == [B, END, PAD, PAD]  # finished: padded, score frozen
    assert scores[0, 0] == pytest.approx(math.log(0.45 * 0.95), abs=1e-5)
    assert scores[0, 0] >= scores[0, 1]  # best first
    # The runner-up's score is the log-probability of its own tokens.
    second = tokens[0, 1]
    expected, previous = 0.0, START
    probabilities = np.exp(TRAP.logits.numpy())
    for token in second[second != PAD]:
        expected += math.log(probabilities[previous, token])
        previous = token
    assert scores[0, 1] == pytest.approx(expected, abs=1e-4)


def test_beam_width_one_equals_greedy_and_stops_early_when_all_finished() -> None:
    decoder = BigramDecoder({START: {A: 0.6, B: 0.4}, A: {END: 0.7, B: 0.3}, B: {END: 1.0}})
    greedy = run(decoder, questions=3, strategy="greedy", max_length=6)
    beam = run(decoder, questions=3, strategy="beam", beam_width=1, max_length=6)
    assert np.array_equal(greedy[0], beam[0])
    assert np.allclose(greedy[1], beam[1])
    assert greedy[0][0, 0].tolist() == [A, END, 0, 0, 0, 0]


def test_padding_and_start_are_never_generated() -> None:
    decoder = BigramDecoder({START: {PAD: 0.5, START: 0.3, B: 0.2}, B: {END: 1.0}})
    tokens, _ = run(decoder, strategy="greedy")
    assert tokens[0, 0].tolist()[:2] == [B, END]


def test_no_strategy_gives_an_empty_answer() -> None:
    decoder = BigramDecoder({START: {END: 0.9, A: 0.1}, A: {END: 1.0}})
    for strategy in ("greedy", "beam", "sample"):
        tokens, scores = run(decoder, strategy=strategy, beam_width=2)
        assert tokens[0, 0].tolist()[:2] == [A, END], strategy
        assert scores[0, 0] == pytest.approx(math.log(0.1), abs=1e-4)  # the model's own probability


def test_length_penalty_lets_beam_search_prefer_longer_answers() -> None:
    # "A" alone: 0.5 * 0.6 = 0.30; "B A" and "B B" each 0.5 * 0.5 * 1.0 = 0.25 but one token longer.
    decoder = BigramDecoder(
        {START: {A: 0.5, B: 0.5}, A: {END: 0.6, A: 0.4}, B: {A: 0.5, UNK: 0.5}, UNK: {END: 1.0}}
    )
    plain, plain_scores = run(decoder, strategy="beam", beam_width=3, max_length=4)
    assert plain[0, 0].tolist()[:2] == [A, END]
    assert plain_scores[0, 0] == pytest.approx(math.log(0.3), abs=1e-5)
    longer, longer_scores = run(decoder, strategy="beam", beam_width=3, max_length=4, length_penalty=2.0)
    assert longer[0, 0].tolist()[0] == B
    assert np.count_nonzero(longer[0, 0]) == 3
    assert longer_scores[0, 0] == pytest.approx(math.log(0.25), abs=1e-5)  # scores stay log-probabilities


def test_sampling_is_reproducible_per_question_and_seed() -> None:
    uniform = BigramDecoder({START: {A: 0.5, B: 0.5}, A: {A: 0.5, END: 0.5}, B: {B: 0.5, END: 0.5}})
    keys = ["what is ai", "who are you", "hello"]
    first, first_scores = run(uniform, keys=keys, strategy="sample", seed=7, max_length=8)
    again, again_scores = run(uniform, keys=keys, strategy="sample", seed=7, max_length=8)
    assert np.array_equal(first, again)
    assert np.array_equal(first_scores, again_scores)
    # The same question gets the same sample wherever it sits in the batch.
    reordered, _ = run(uniform, keys=keys[::-1], strategy="sample", seed=7, max_length=8)
    assert np.array_equal(first, reordered[::-1])
    # Other seeds give other samples.
    samples = {
        tuple(run(uniform, keys=keys, strategy="sample", seed=s, max_length=8)[0].ravel()) for s in range(8)
    }
    assert len(samples) > 1


def test_sampling_follows_the_model_distribution() -> None:
    decoder = BigramDecoder({START: {A: 0.8, B: 0.2}, A: {END: 1.0}, B: {END: 1.0}})
    keys = [f"q{i}" for i in range(2000)]
    tokens, scores = run(decoder, keys=keys, strategy="sample", seed=3, max_length=3)
    share = np.mean(tokens[:, 0, 0] == A)
    assert share == pytest.approx(0.8, abs=0.04)  # 2000 draws: 4.5 standard errors
    # Scores are log-probabilities under the model, whatever was drawn.
    expected = np.where(tokens[:, 0, 0] == A, math.log(0.8), math.log(0.2))
    assert np.allclose(scores[:, 0], expected, atol=1e-5)


def test_top_k_top_p_and_temperature_limits_give_greedy() -> None:
    decoder = BigramDecoder({START: {A: 0.5, B: 0.3, UNK: 0.2}, A: {B: 0.6, END: 0.4}, B: {END: 1.0}})
    keys = [f"q{i}" for i in range(30)]
    greedy, _ = run(decoder, keys=keys, strategy="greedy")
    for options in ({"top_k": 1}, {"top_p": 0.0}, {"temperature": 0.0}):
        sampled, _ = run(decoder, keys=keys, strategy="sample", seed=1, **options)
        assert np.array_equal(sampled, greedy), options


def test_top_k_and_top_p_exclude_unlikely_tokens() -> None:
    decoder = BigramDecoder(
        {START: {A: 0.5, B: 0.3, UNK: 0.2}, A: {END: 1.0}, B: {END: 1.0}, UNK: {END: 1.0}}
    )
    keys = [f"q{i}" for i in range(300)]
    top2, _ = run(decoder, keys=keys, strategy="sample", seed=2, top_k=2)
    assert set(top2[:, 0, 0]) == {A, B}
    nucleus, _ = run(decoder, keys=keys, strategy="sample", seed=2, top_p=0.7)  # A + B reach 0.8
    assert set(nucleus[:, 0, 0]) == {A, B}
    hot, _ = run(decoder, keys=keys, strategy="sample", seed=2, temperature=5.0)
    assert np.mean(hot[:, 0, 0] == A) < np.mean(top2[:, 0, 0] == A)  # flatter distribution


def test_overrides_keep_defaults_for_negative_numbers_and_reject_unknown_strategies() -> None:
    defaults = SearchOptions.from_config(
        DecodingConfig(strategy="beam", beam_width=3, top_p=0.9), max_length=9
    )
    kept = defaults.override(tf.constant(""), *[tf.constant(-1)] * 10)
    assert [float(v) for v in kept] == pytest.approx([float(v) for v in defaults])
    changed = defaults.override(
        tf.constant("sample"),
        tf.constant(-1),
        tf.constant(5),
        tf.constant(0.5),
        tf.constant(0.7),
        tf.constant(11, tf.int64),
        tf.constant(4),
        tf.constant(1.5),
        tf.constant(2),
        tf.constant(1.3),
        tf.constant(3),
    )
    assert [float(v) for v in changed] == pytest.approx([2, 3, 5, 0.5, 0.7, 11, 4, 1.5, 2, 1.3, 3])
    with pytest.raises(tf.errors.InvalidArgumentError, match="unknown decoding strategy"):
        defaults.override(tf.constant("bean"), *[tf.constant(-1)] * 10)
    with pytest.raises(tf.errors.InvalidArgumentError, match="repetition_penalty must be positive"):
        defaults.override(tf.constant(""), *[tf.constant(-1)] * 8, tf.constant(0.0), tf.constant(-1))


@pytest.mark.parametrize("decoder_type", ["gru", "transformer"])
def test_beam_width_one_equals_greedy_on_a_real_model(decoder_type: str) -> None:
    keras.utils.set_random_seed(0)  # the weights, whatever ran before in this process
    overrides = ["encoder.units=8", "embedding.dim=4", "decoder.max_length=7", f"decoder.type={decoder_type}"]
    seq2seq = build_seq2seq(load_config([], [*overrides, "decoder.heads=2"]), 20, 15)
    questions = tf.constant([[5, 6, 7, 0], [8, 0, 0, 0], [9, 10, 11, 12]])
    encoded = seq2seq.get_layer("encoder")(questions)
    decoder = seq2seq.get_layer("decoder")
    results = {}
    for name, config in {
        "greedy": DecodingConfig(**GUARDS_OFF),
        "beam1": DecodingConfig(strategy="beam", beam_width=1, **GUARDS_OFF),
    }.items():
        options = SearchOptions.from_config(config, max_length=7)
        results[name] = search(
            decoder, encoded, options, start_id=2, end_id=3, row_keys=tf.constant(["a", "b", "c"])
        )
    assert np.array_equal(results["greedy"].tokens.numpy(), results["beam1"].tokens.numpy())
    assert np.allclose(results["greedy"].scores.numpy(), results["beam1"].scores.numpy(), atol=1e-5)
    # Without the guards beams rank by log-probability alone (with a penalty, by the penalised one).
    plain = DecodingConfig(strategy="beam", beam_width=4, **GUARDS_OFF)
    wide = search(
        decoder,
        encoded,
        SearchOptions.from_config(plain, max_length=7),
        start_id=2,
        end_id=3,
        row_keys=tf.constant(["a", "b", "c"]),
    )
    assert wide.tokens.shape[:2] == (3, 4)
    assert np.all(np.diff(wide.scores.numpy(), axis=1) <= 1e-6)  # best first
    assert np.all(wide.scores.numpy()[:, 0] >= results["greedy"].scores.numpy()[:, 0] - 1e-5)


# Wants to loop: after START or any word, "A" is the most likely next token, then "B A".
LOOP = BigramDecoder(
    {
        START: {A: 0.6, B: 0.3, UNK: 0.1},
        A: {A: 0.5, B: 0.3, UNK: 0.1, END: 0.1},
        B: {A: 0.7, B: 0.1, UNK: 0.1, END: 0.1},
        UNK: {A: 0.6, B: 0.2, UNK: 0.1, END: 0.1},
    }
)


def ngrams(answer: list[int], n: int) -> list[tuple[int, ...]]:
    """The n-grams of an answer up to its end token (padding after it left out)."""
    words = answer[: answer.index(END) + 1] if END in answer else answer
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_repeat_ngram_never_repeats_an_ngram(strategy: str, n: int) -> None:
    keys = [f"q{i}" for i in range(6)]
    settings = {"strategy": strategy, "beam_width": 3, "seed": 4, "max_length": 8}
    looping, _ = run(LOOP, keys=keys, **settings, **GUARDS_OFF)
    assert any(len(set(ngrams(a, n))) < len(ngrams(a, n)) for a in looping[:, 0].tolist())  # wants to
    tokens, scores = run(LOOP, keys=keys, **settings, no_repeat_ngram=n, repetition_penalty=1.0)
    for answer in tokens.reshape(-1, tokens.shape[-1]).tolist():
        grams = ngrams(answer, n)
        assert len(set(grams)) == len(grams), answer
        assert PAD not in answer[: len(grams) + n - 1], answer  # no padding mid-answer
    assert np.all(scores[:, 0] > -1e3)  # real log-probabilities, not banned choices


def test_an_answer_with_every_word_used_ends_rather_than_writing_padding() -> None:
    # n = 1 bans every word once written: after A, B and UNK only the end token is left.
    tokens, _ = run(
        LOOP, strategy="greedy", max_length=8, no_repeat_ngram=1, min_length=8, repetition_penalty=1.0
    )
    assert sorted(tokens[0, 0].tolist()[:3]) == [UNK, A, B]
    assert tokens[0, 0].tolist()[3:] == [END, PAD, PAD, PAD, PAD]


def test_repetition_penalty_lowers_repeated_tokens_and_keeps_model_scores() -> None:
    logits = tf.constant([[[2.0, -1.0, 3.0, -2.0]]])
    written = tf.constant([[[0, 1, 2]]])  # padding, token 1, token 2 already written
    penalised = _penalise(logits, written, tf.constant(2.0)).numpy()[0, 0]
    # Positive logits are divided, negative ones multiplied: both become less likely.
    assert penalised.tolist() == pytest.approx([1.0, -2.0, 1.5, -2.0])
    assert _penalise(logits, written, tf.constant(1.0)).numpy().tolist() == logits.numpy().tolist()

    # After "A", A (log 0.5) beats B (log 0.3); with penalty 2, -0.69 * 2 < -1.20 and B wins.
    decoder = BigramDecoder({START: {A: 0.9, B: 0.1}, A: {A: 0.5, B: 0.3, END: 0.2}, B: {END: 1.0}})
    plain, _ = run(decoder, strategy="greedy", max_length=4, **GUARDS_OFF)
    assert plain[0, 0].tolist()[:2] == [A, A]
    for strategy in ("greedy", "beam", "sample"):
        tokens, scores = run(
            decoder,
            strategy=strategy,
            beam_width=1,
            temperature=0.0,
            max_length=4,
            no_repeat_ngram=0,
            repetition_penalty=2.0,
        )
        assert tokens[0, 0].tolist()[:3] == [A, B, END], strategy
        # The score is the model's own log-probability of what was written, not the penalised one.
        assert scores[0, 0] == pytest.approx(math.log(0.9 * 0.3 * 1.0), abs=1e-5), strategy


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_min_length_forbids_the_end_token_before_it(strategy: str) -> None:
    eager = BigramDecoder({START: {A: 0.2, END: 0.8}, A: {END: 0.9, B: 0.1}, B: {END: 0.9, A: 0.1}})
    keys = [f"q{i}" for i in range(5)]
    settings = {"strategy": strategy, "beam_width": 2, "seed": 1, "max_length": 6, **GUARDS_OFF}
    short, _ = run(eager, keys=keys, **settings)
    assert (np.argmax(short[:, 0] == END, axis=-1) == 1).all()  # one word, then the end
    tokens, scores = run(eager, keys=keys, **settings, min_length=3)
    for answer in tokens.reshape(-1, tokens.shape[-1]).tolist():
        assert END not in answer[:3], answer
        assert PAD not in answer[:3], answer
    assert np.all(scores > -1e3)
