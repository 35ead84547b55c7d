"""Weight transfer by name and shape, row remapping, and the report; freezing only the embedding."""

from __future__ import annotations

import keras
import numpy as np

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.models.encoders import build_encoder
from qa_assistant.models.freezing import freeze_encoder
from qa_assistant.personalization.transfer import Remap, index_map, transfer_weights


def model(words: int, classes: int, units: int = 4) -> keras.Model:
    ids = keras.Input((None,), dtype="int32")
    x = keras.layers.Embedding(words, 3, name="token_embedding")(ids)
    x = keras.layers.GlobalAveragePooling1D()(x)
    x = keras.layers.Dense(units, name="hidden")(x)
    return keras.Model(ids, keras.layers.Dense(classes, name="answer_logits")(x))


def dense(inputs: int, units: int, name: str) -> keras.Model:
    x = keras.Input((inputs,))
    return keras.Model(x, keras.layers.Dense(units, name=name)(x))


def weights(m: keras.Model) -> list[tuple[str, np.ndarray]]:
    return [(v.path, v.numpy()) for v in m.weights]


def test_same_names_and_shapes_are_loaded_others_new_or_skipped() -> None:
    keras.utils.set_random_seed(0)
    base = model(6, 3, units=4)
    new = model(6, 3, units=5)
    report = transfer_weights(new, weights(base))
    assert report.loaded == ["token_embedding/embeddings", "answer_logits/bias"]
    assert [name for name, _ in report.skipped] == ["hidden/kernel", "hidden/bias", "answer_logits/kernel"]
    assert report.skipped[0][1] == "shape (3, 4) in the base, (3, 5) here"
    np.testing.assert_array_equal(
        new.get_layer("token_embedding").embeddings.numpy(),
        base.get_layer("token_embedding").embeddings.numpy(),
    )
    assert transfer_weights(dense(2, 1, "other"), weights(base)).new == ["other/kernel", "other/bias"]


def test_remapped_rows_keep_shared_entries_and_fill_new_ones() -> None:
    keras.utils.set_random_seed(1)
    base, new = model(5, 3), model(7, 3)
    base_words = ["", "[UNK]", "a", "b", "c"]
    new_words = ["", "[UNK]", "a", "b", "c", "d", "e"]
    base_labels, new_labels = ["x", "y", "z"], ["z", "w", "x"]  # same size, other answers
    fill = lambda mask, merged: np.where(mask[:, None], 7.0, merged)  # noqa: E731
    remaps = {
        "token_embedding/embeddings": Remap(0, index_map(new_words, base_words), "words", fill),
        "answer_logits/kernel": Remap(1, index_map(new_labels, base_labels), "answers"),
        "answer_logits/bias": Remap(0, index_map(new_labels, base_labels), "answers"),
    }
    fresh = new.get_layer("answer_logits").kernel.numpy().copy()
    report = transfer_weights(new, weights(base), remaps)
    embedding = new.get_layer("token_embedding").embeddings.numpy()
    np.testing.assert_array_equal(embedding[:5], base.get_layer("token_embedding").embeddings.numpy())
    assert (embedding[5:] == 7.0).all()
    kernel, base_kernel = (
        new.get_layer("answer_logits").kernel.numpy(),
        base.get_layer("answer_logits").kernel.numpy(),
    )
    np.testing.assert_array_equal(kernel[:, 0], base_kernel[:, 2])  # "z"
    np.testing.assert_array_equal(kernel[:, 2], base_kernel[:, 0])  # "x"
    np.testing.assert_array_equal(kernel[:, 1], fresh[:, 1])  # "w" is new: its fresh initialisation
    assert report.remapped == [
        ("token_embedding/embeddings", "words", 5, 2),
        ("answer_logits/kernel", "answers", 2, 1),
        ("answer_logits/bias", "answers", 2, 1),
    ]
    assert report.loaded == ["hidden/kernel", "hidden/bias"]


def test_repeated_names_match_in_order() -> None:
    a, b = dense(2, 2, "d"), dense(2, 2, "d")
    source = [("d/kernel", np.full((2, 2), 1.0)), ("d/bias", np.zeros(2)), ("d/kernel", np.full((2, 2), 2.0))]
    inputs = keras.Input((2,))
    both = keras.Model(inputs, [a(inputs), b(inputs)])
    report = transfer_weights(both, source)
    assert (a.weights[0].numpy() == 1.0).all()
    assert (b.weights[0].numpy() == 2.0).all()
    assert report.new == ["d/bias"]


def test_freeze_the_embedding_only() -> None:
    encoder = build_encoder(EncoderConfig(type="gru", units=4, layers=2), 20, EmbeddingConfig(dim=4))
    freeze_encoder(encoder, "embedding")
    frozen = [layer.name for layer in encoder.layers if layer.weights and not layer.trainable]
    assert frozen == ["token_embedding"]
