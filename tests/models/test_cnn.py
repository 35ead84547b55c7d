"""The CNN encoder (Kim 2014): the catalogue contract, padding, word vectors, and a run that learns."""

import re
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest

from qa_assistant.config import EmbeddingConfig, EncoderConfig, load_config
from qa_assistant.errors import UserError
from qa_assistant.models.encoders import build_encoder, encoder_names
from qa_assistant.training.runner import train_run
from tests.helpers import tiny_config

IDS = np.array([[3, 4, 5, 6, 0, 0], [7, 0, 0, 0, 0, 0]], dtype="int32")


def cnn(**settings: object) -> keras.Model:
    config = EncoderConfig(type="cnn", units=5, **settings)
    return build_encoder(config, 20, EmbeddingConfig(dim=4))


def test_one_feature_map_per_width_and_max_over_time_pooling() -> None:
    assert "cnn" in encoder_names()
    encoder = cnn(kernel_sizes="2,3")
    out = encoder(IDS)
    assert out["sequence_output"].shape == (2, 6, 10)  # 5 filters x 2 widths
    assert out["pooled_output"].shape == (2, 10)
    assert np.array_equal(np.asarray(out["padding_mask"]), IDS != 0)
    sequence, pooled = np.asarray(out["sequence_output"]), np.asarray(out["pooled_output"])
    np.testing.assert_allclose(pooled[0], sequence[0, :4].max(axis=0), rtol=1e-6)  # real tokens only
    np.testing.assert_allclose(pooled[1], sequence[1, :1].max(axis=0), rtol=1e-6)
    assert {layer.name for layer in encoder.layers} >= {"conv_2", "conv_3", "token_embedding"}


def test_padding_does_not_change_the_text_vector() -> None:
    encoder = cnn()
    alone = np.asarray(encoder(np.array([[3, 4, 5]], dtype="int32"))["pooled_output"])
    padded = np.asarray(encoder(np.array([[3, 4, 5, 0, 0, 0, 0]], dtype="int32"))["pooled_output"])
    np.testing.assert_allclose(alone, padded, atol=1e-6)


def test_pretrained_word_vectors_start_the_embedding() -> None:
    matrix = np.random.default_rng(0).normal(size=(20, 4)).astype("float32")
    config = EncoderConfig(type="cnn", units=3, kernel_sizes="3")
    encoder = build_encoder(config, 20, EmbeddingConfig(dim=4, trainable=False), matrix)
    layer = encoder.get_layer("token_embedding")
    np.testing.assert_allclose(layer.embeddings.numpy(), matrix)
    assert not layer.trainable


def test_bad_widths_are_a_config_error() -> None:
    expected = "encoder.kernel_sizes' got '3,,5'; expected comma-separated widths"
    with pytest.raises(UserError, match=re.escape(expected)):
        tiny_config("encoder.type=cnn", "encoder.kernel_sizes=3,,5")


def test_the_shipped_cnn_classifier_learns_topics_that_a_bag_of_words_gets(tmp_path: Path) -> None:
    topics = {"weather": "rain", "music": "guitar", "money": "bank", "sport": "goal"}
    rng = np.random.default_rng(0)
    filler = ["please", "tell", "me", "about", "the", "today", "now", "what", "is", "a"]
    rows = [
        {"question": " ".join([*rng.choice(filler, 4), word, *rng.choice(filler, 2)]), "answer": topic}
        for topic, word in topics.items()
        for _ in range(40)
    ]
    data = tmp_path / "topics.csv"
    pd.DataFrame(rows).to_csv(data, index=False)
    # The shipped config, sizes shrunk (and the test file's data), nothing else.
    shipped = Path(__file__).parents[2] / "experiments" / "configs" / "classify_cnn.yaml"
    sizes = ["encoder.units=16", "embedding.dim=16", "train.epochs=20", "train.jit_compile=false"]
    config = load_config([shipped], [*sizes, f"data.train={data}", "tensorboard.confusion_classes=0"])
    metrics = train_run(config, tmp_path / "run").metrics
    assert metrics["accuracy"] >= 0.9, metrics  # one keyword decides; chance is 0.25


def test_a_batch_of_no_rows_or_no_tokens_encodes() -> None:
    """TensorFlow's convolution returns its input's shape for such batches; the encoder pads a
    spare row and position around it. An empty text pools to zeros."""
    encoder = cnn(kernel_sizes="2,3")
    for shape in [(0, 0), (0, 6), (2, 0)]:
        out = encoder(np.zeros(shape, dtype="int32"))
        assert out["sequence_output"].shape == (*shape, 10)
        assert out["pooled_output"].shape == (shape[0], 10)
    assert not np.asarray(encoder(np.zeros((2, 4), dtype="int32"))["pooled_output"]).any()
