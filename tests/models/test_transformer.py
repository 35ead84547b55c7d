import re

import keras
import numpy as np
import pytest

from qa_assistant.config import EmbeddingConfig, EncoderConfig, load_config
from qa_assistant.errors import UserError
from qa_assistant.models.encoders import build_encoder

IDS = np.array([[3, 4, 5, 0, 0], [6, 0, 0, 0, 0]], dtype="int32")


def tiny(**overrides) -> EncoderConfig:
    base = {
        "type": "transformer",
        "units": 8,
        "layers": 2,
        "heads": 2,
        "intermediate_dim": 16,
        "max_positions": 8,
    }
    return EncoderConfig(**{**base, **overrides})


@pytest.mark.parametrize("pooling", ["auto", "mean", "max", "first"])
def test_output_shapes(pooling: str) -> None:
    encoder = build_encoder(tiny(pooling=pooling, dropout=0.1), 20, EmbeddingConfig(dim=4))
    out = encoder(IDS)
    assert out["sequence_output"].shape == (2, 5, 8)
    assert out["pooled_output"].shape == (2, 8)
    assert np.array_equal(np.asarray(out["padding_mask"]), IDS != 0)


@pytest.mark.parametrize("pooling", ["mean", "max", "first"])
def test_padding_does_not_change_the_pooled_vector(pooling: str) -> None:
    encoder = build_encoder(tiny(pooling=pooling), 20, EmbeddingConfig(dim=8))
    short = np.asarray(encoder(np.array([[3, 4]], dtype="int32"))["pooled_output"])
    padded = np.asarray(encoder(np.array([[3, 4, 0, 0, 0]], dtype="int32"))["pooled_output"])
    assert np.allclose(short, padded, atol=1e-5)


def test_pretrained_word_vectors_initialise_the_token_embedding() -> None:
    matrix = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    encoder = build_encoder(tiny(), 20, EmbeddingConfig(dim=4, trainable=False), matrix)
    layer = encoder.get_layer("token_and_position_embedding").token_embedding
    assert np.allclose(np.asarray(layer.embeddings), matrix)
    assert not layer.trainable
    assert encoder.get_layer("embedding_projection").output.shape[-1] == 8


def test_config_round_trips() -> None:
    encoder = build_encoder(tiny(), 20, EmbeddingConfig(dim=8))
    clone = keras.Model.from_config(encoder.get_config())
    clone.set_weights(encoder.get_weights())
    assert np.allclose(np.asarray(clone(IDS)["pooled_output"]), np.asarray(encoder(IDS)["pooled_output"]))


def test_last_pooling_is_refused_for_a_transformer() -> None:
    with pytest.raises(
        UserError, match=re.escape("encoder.pooling 'last' does not apply to a transformer encoder")
    ):
        build_encoder(tiny(pooling="last"), 20, EmbeddingConfig(dim=8))


def test_config_checks_heads_and_positions() -> None:
    with pytest.raises(UserError, match=r"encoder.units \(10\) must be a multiple of encoder.heads \(4\)"):
        load_config([], ["encoder.type=transformer", "encoder.units=10", "encoder.heads=4"])
    with pytest.raises(UserError, match=re.escape("encoder.max_positions is 16; expected at least 32")):
        load_config([], ["encoder.type=transformer", "encoder.max_positions=16"])
