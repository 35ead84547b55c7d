import keras
import numpy as np
import pytest

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.errors import UserError
from qa_assistant.models.encoders import build_encoder, encoder_names

IDS = np.array([[3, 4, 5, 0, 0], [6, 0, 0, 0, 0]], dtype="int32")


@pytest.mark.parametrize("kind", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_output_shapes(kind: str, bidirectional: bool) -> None:
    config = EncoderConfig(type=kind, units=6, layers=2, bidirectional=bidirectional, dropout=0.1)
    encoder = build_encoder(config, 20, EmbeddingConfig(dim=4))
    out = encoder(IDS)
    width = 12 if bidirectional else 6
    assert out["sequence_output"].shape == (2, 5, width)
    assert out["pooled_output"].shape == (2, width)
    assert np.array_equal(np.asarray(out["padding_mask"]), IDS != 0)
    states_per_direction = 2 if kind == "lstm" else 1
    assert len(out["final_states"]) == states_per_direction * (2 if bidirectional else 1)


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_padding_does_not_change_the_pooled_vector(kind: str) -> None:
    encoder = build_encoder(EncoderConfig(type=kind, units=6, bidirectional=True), 20, EmbeddingConfig(dim=4))
    short = np.asarray(encoder(np.array([[3, 4]], dtype="int32"))["pooled_output"])
    padded = np.asarray(encoder(np.array([[3, 4, 0, 0, 0]], dtype="int32"))["pooled_output"])
    assert np.allclose(short, padded, atol=1e-6)


def test_embedding_initialisation_and_freezing() -> None:
    matrix = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    encoder = build_encoder(EncoderConfig(units=4), 20, EmbeddingConfig(dim=4, trainable=False), matrix)
    layer = encoder.get_layer("token_embedding")
    assert np.allclose(layer.embeddings.numpy(), matrix)
    assert not layer.trainable


def test_unknown_encoder_lists_known_ones() -> None:
    with pytest.raises(
        UserError,
        match="unknown encoder 'gur' \\(did you mean 'gru'\\?\\); expected one of: cnn, gru, lstm, pretrained, transformer",
    ):
        build_encoder(EncoderConfig(type="gur"), 20, EmbeddingConfig(dim=4))
    assert {"gru", "lstm"} <= set(encoder_names())


def test_encoder_config_round_trips() -> None:
    encoder = build_encoder(EncoderConfig(units=4, layers=2), 20, EmbeddingConfig(dim=4))
    clone = keras.Model.from_config(encoder.get_config())
    clone.set_weights(encoder.get_weights())
    assert np.allclose(np.asarray(clone(IDS)["pooled_output"]), np.asarray(encoder(IDS)["pooled_output"]))
