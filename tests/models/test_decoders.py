"""Decoders: teacher forcing = step-by-step decoding, masking, config round trips."""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.config import DecoderConfig, EmbeddingConfig, EncoderConfig, load_config
from qa_assistant.errors import UserError
from qa_assistant.models.attention import BahdanauAttention, LuongAttention
from qa_assistant.models.decoders import build_decoder, build_seq2seq, decoder_names

QUESTIONS = np.array([[5, 6, 7, 0, 0], [8, 9, 0, 0, 0]], dtype="int32")
DECODER_IDS = np.array([[2, 4, 5, 6], [2, 7, 0, 0]], dtype="int32")
TARGET_VOCABULARY = 15

ARCHITECTURES = {
    "gru-bahdanau": ["encoder.type=gru", "decoder.type=gru", "decoder.attention=bahdanau"],
    "bigru-luong": ["encoder.type=gru", "encoder.bidirectional=true", "decoder.attention=luong"],
    "bilstm-lstm-2-layers": [
        "encoder.type=lstm",
        "encoder.bidirectional=true",
        "decoder.type=lstm",
        "decoder.layers=2",
        "decoder.attention=luong",
    ],
    "lstm-gru-no-attention": ["encoder.type=lstm", "decoder.type=gru", "decoder.attention=none"],
    "transformer": [
        "encoder.type=transformer",
        "decoder.type=transformer",
        "encoder.heads=2",
        "encoder.intermediate_dim=16",
        "decoder.heads=2",
    ],
    "gru-transformer": ["encoder.type=gru", "decoder.type=transformer", "decoder.heads=2", "decoder.units=6"],
    "transformer-lstm": [
        "encoder.type=transformer",
        "encoder.heads=2",
        "encoder.intermediate_dim=16",
        "decoder.type=lstm",
    ],
}


def seq2seq(name: str) -> keras.Model:
    config = load_config(
        [], ["encoder.units=8", "embedding.dim=4", "decoder.max_length=6", *ARCHITECTURES[name]]
    )
    keras.utils.set_random_seed(1)
    return build_seq2seq(config, 20, TARGET_VOCABULARY)


def teacher_forced(model: keras.Model, questions: np.ndarray = QUESTIONS, inputs: np.ndarray = DECODER_IDS):
    return np.asarray(model({"token_ids": questions, "decoder_ids": inputs}))


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_step_by_step_decoding_reproduces_teacher_forcing(name: str) -> None:
    model = seq2seq(name)
    logits = teacher_forced(model)
    assert logits.shape == (2, 4, TARGET_VOCABULARY)
    decoder = model.get_layer("decoder")
    state, memory = decoder.start(model.get_layer("encoder")(QUESTIONS), 6)
    steps = []
    for index in range(DECODER_IDS.shape[1]):
        step_logits, state = decoder.step(
            tf.constant(DECODER_IDS[:, index]), tf.constant(index), state, memory
        )
        steps.append(np.asarray(step_logits))
    real = DECODER_IDS != 0
    assert np.allclose(np.stack(steps, axis=1)[real], logits[real], atol=1e-5)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_padding_changes_no_real_position(name: str) -> None:
    model = seq2seq(name)
    logits = teacher_forced(model)
    longer_questions = np.pad(QUESTIONS, [[0, 0], [0, 3]])
    longer_answers = np.pad(DECODER_IDS, [[0, 0], [0, 2]])
    padded = teacher_forced(model, longer_questions, longer_answers)[:, :4]
    real = DECODER_IDS != 0
    assert np.allclose(padded[real], logits[real], atol=1e-5)


def test_transformer_decoder_accepts_padding_past_its_positions() -> None:
    model = seq2seq("transformer")  # decoder.max_length=6
    logits = teacher_forced(model)
    padded = teacher_forced(model, QUESTIONS, np.pad(DECODER_IDS, [[0, 0], [0, 6]]))  # 10 positions
    real = DECODER_IDS != 0
    assert np.allclose(padded[:, :4][real], logits[real], atol=1e-5)


@pytest.mark.parametrize("name", ["bilstm-lstm-2-layers", "transformer"])
def test_saved_model_file_reloads_with_safe_mode(name: str, tmp_path) -> None:
    model = seq2seq(name)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True, compile=False)
    assert np.allclose(teacher_forced(loaded), teacher_forced(model), atol=1e-6)


def test_the_encoder_final_state_initialises_the_decoder() -> None:
    model = seq2seq("gru-bahdanau")
    encoded = model.get_layer("encoder")(QUESTIONS)
    state, _ = model.get_layer("decoder").start(encoded)
    assert np.allclose(np.asarray(state["cells"][0][0]), np.asarray(encoded["final_states"][0]))
    # A bidirectional encoder's two directions are bridged to the decoder's width.
    bidirectional = seq2seq("bigru-luong")
    encoded = bidirectional.get_layer("encoder")(QUESTIONS)
    decoder = bidirectional.get_layer("decoder")
    state, _ = decoder.start(encoded)
    both = np.concatenate([np.asarray(s) for s in encoded["final_states"]], axis=-1)
    assert np.allclose(np.asarray(state["cells"][0][0]), np.asarray(decoder.h_bridge(both)), atol=1e-6)


@pytest.mark.parametrize("name", ["bigru-luong", "transformer"])
def test_decoder_config_round_trips(name: str) -> None:
    model = seq2seq(name)
    decoder = model.get_layer("decoder")
    encoded = model.get_layer("encoder")(QUESTIONS)
    clone = decoder.__class__.from_config(decoder.get_config())
    clone(DECODER_IDS, encoded)
    clone.set_weights(decoder.get_weights())
    assert np.allclose(np.asarray(clone(DECODER_IDS, encoded)), np.asarray(decoder(DECODER_IDS, encoded)))


@pytest.mark.parametrize("layer_class", [BahdanauAttention, LuongAttention])
def test_attention_ignores_padding_and_round_trips(layer_class: type) -> None:
    layer = layer_class(units=5, memory_dim=6, query_dim=5)
    memory = np.random.default_rng(0).normal(size=(2, 4, 6)).astype("float32")
    mask = np.array([[True, True, False, False], [True, True, True, False]])
    query = np.ones((2, 5), "float32")
    context, weights = layer(query, layer.keys(memory), memory, mask)
    assert np.allclose(np.asarray(weights)[~mask], 0.0)
    assert np.allclose(np.asarray(weights).sum(axis=1), 1.0)
    changed = memory.copy()
    changed[~mask] = 100.0
    assert np.allclose(np.asarray(layer(query, layer.keys(changed), changed, mask)[0]), np.asarray(context))
    clone = layer_class.from_config(layer.get_config())
    clone.keys(memory)
    clone.set_weights(layer.get_weights())
    assert np.allclose(np.asarray(clone(query, clone.keys(memory), memory, mask)[0]), np.asarray(context))


def test_unknown_decoder_and_bad_widths_are_user_errors() -> None:
    embedding = EmbeddingConfig(dim=4)
    with pytest.raises(
        UserError, match="unknown decoder 'gur' \\(did you mean 'gru'\\?\\); expected one of: gru, lstm"
    ):
        build_decoder(DecoderConfig(type="gur"), EncoderConfig(), 10, embedding)
    assert set(decoder_names()) == {"gru", "lstm", "transformer"}
    with pytest.raises(
        UserError, match=re.escape("decoder width (6) must be divisible by decoder.heads (4)")
    ):
        build_decoder(DecoderConfig(type="transformer", units=6), EncoderConfig(), 10, embedding)


@pytest.mark.large
def test_a_train_step_compiles_with_xla() -> None:
    """XLA is off by default for generation, but `train.jit_compile=true` must work.

    `large`: the XLA compilation alone takes several seconds on 2 CPU cores.
    """
    from qa_assistant.metrics.generation import MaskedTokenAccuracy, masked_loss

    model = seq2seq("bigru-luong")  # the decoder's own training loop is a tf.while_loop
    model.compile(optimizer="adam", loss=masked_loss(), metrics=[MaskedTokenAccuracy()], jit_compile=True)
    targets = np.array([[4, 5, 6, 3], [7, 3, 0, 0]], dtype="int32")
    before = model.train_on_batch(
        {"token_ids": QUESTIONS, "decoder_ids": DECODER_IDS}, targets, return_dict=True
    )
    after = model.train_on_batch(
        {"token_ids": QUESTIONS, "decoder_ids": DECODER_IDS}, targets, return_dict=True
    )
    assert np.isfinite(before["loss"])
    assert after["loss"] < before["loss"]


def test_a_pretrained_encoder_under_a_transformer_decoder(tmp_path) -> None:
    """A keras-hub backbone (width 8) feeds a narrower Transformer decoder through cross-attention."""
    from tests.helpers import SPECIAL_TOKENS, faq_words, tiny_preset

    preset = tiny_preset(tmp_path / "preset", layers=1)
    config = load_config(
        [],
        [
            "encoder.type=pretrained",
            f"encoder.preset={preset}",
            "decoder.type=transformer",
            "decoder.units=4",
            "decoder.heads=2",
            "decoder.max_length=6",
            "embedding.dim=4",
        ],
    )
    model = build_seq2seq(config, len(SPECIAL_TOKENS) + len(faq_words()), TARGET_VOCABULARY)
    logits = teacher_forced(model)
    assert logits.shape == (2, 4, TARGET_VOCABULARY)
    decoder_layer = model.get_layer("decoder")
    state, memory = decoder_layer.start(model.get_layer("encoder")(QUESTIONS), 6)
    first, _ = decoder_layer.step(tf.constant(DECODER_IDS[:, 0]), tf.constant(0), state, memory)
    assert np.allclose(np.asarray(first), logits[:, 0], atol=1e-5)
