import re
import sys
from pathlib import Path

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.config import EmbeddingConfig, EncoderConfig, load_config
from qa_assistant.errors import UserError
from qa_assistant.models.encoders import build_encoder
from qa_assistant.models.freezing import freeze_encoder, trainable_summary
from qa_assistant.presets import resolve_preset
from qa_assistant.text.tokenizer_factory import build_tokenizer
from tests.helpers import SPECIAL_TOKENS, faq_words, tiny_hf_bert_checkpoint, tiny_preset

VOCABULARY_SIZE = len(SPECIAL_TOKENS) + len(faq_words())
IDS = np.array([[2, 7, 8, 3, 0, 0], [2, 9, 3, 0, 0, 0]], dtype="int32")


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_preset(tmp_path_factory.mktemp("preset"))


def pretrained(preset: Path, **overrides) -> keras.Model:
    config = EncoderConfig(type="pretrained", preset=str(preset), **overrides)
    return build_encoder(config, VOCABULARY_SIZE, EmbeddingConfig())


def test_output_shapes_and_mean_pooling_ignores_padding(preset: Path) -> None:
    encoder = pretrained(preset)
    out = encoder(IDS)
    assert out["sequence_output"].shape == (2, 6, 8)
    assert out["pooled_output"].shape == (2, 8)
    sequence = np.asarray(out["sequence_output"])
    assert np.allclose(np.asarray(out["pooled_output"])[0], sequence[0, :4].mean(axis=0), atol=1e-5)


def test_weights_come_from_the_preset(preset: Path) -> None:
    first, second = pretrained(preset), pretrained(preset)
    assert np.allclose(np.asarray(first(IDS)["pooled_output"]), np.asarray(second(IDS)["pooled_output"]))


def test_freeze_all_and_lower_layers(preset: Path) -> None:
    assert trainable_summary(pretrained(preset, freeze="all"))[0] == 0
    encoder = pretrained(preset, freeze="1")
    # By type: Keras numbers the name (bert_backbone_1) when another test built a backbone first.
    (backbone,) = [layer for layer in encoder.layers if isinstance(layer, keras_hub.models.Backbone)]
    assert not backbone.get_layer("token_embedding").trainable
    assert not backbone.get_layer("transformer_layer_0").trainable
    assert backbone.get_layer("transformer_layer_1").trainable
    trainable, total = trainable_summary(encoder)
    assert 0 < trainable < total


def test_freezing_more_layers_than_exist_is_a_user_error(preset: Path) -> None:
    with pytest.raises(UserError, match=re.escape("encoder.freeze is 3, but the encoder has 2 layers")):
        pretrained(preset, freeze="3")
    with pytest.raises(UserError, match="expected none, embedding, all or a number of lower layers"):
        load_config([], ["encoder.freeze=some"])


def test_vocabulary_mismatch_is_a_user_error(preset: Path) -> None:
    config = EncoderConfig(type="pretrained", preset=str(preset))
    with pytest.raises(UserError, match="token embeddings but its tokenizer"):
        build_encoder(config, VOCABULARY_SIZE + 1, EmbeddingConfig())


def test_package_preset_resolves_without_importing_the_package(tmp_path: Path, monkeypatch) -> None:
    package = tmp_path / "fake_model_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (package / "model" / "config.json").write_text("{}")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert resolve_preset("package:fake_model_pkg") == str(package / "model")
    assert "fake_model_pkg" not in sys.modules


def test_missing_package_and_bad_paths_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no installed package 'no_such_model_pkg'; install it"):
        resolve_preset("package:no_such_model_pkg")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match="is not a directory"):
        resolve_preset(str(tmp_path / "file.txt"))
    with pytest.raises(UserError, match=re.escape("needs encoder.preset")):
        load_config([], ["encoder.type=pretrained"])


def test_recurrent_freezing_api() -> None:
    encoder = build_encoder(EncoderConfig(type="gru", units=4, layers=2), 20, EmbeddingConfig(dim=4))
    freeze_encoder(encoder, 1)
    frozen = [layer.name for layer in encoder.layers if layer.weights and not layer.trainable]
    assert frozen == ["token_embedding", "gru_0"]


def test_hugging_face_checkpoint_loads_through_the_minilm_path(tmp_path: Path) -> None:
    """A hand-written HF BERT directory (MiniLM's layout) loads offline with its own weights and vocabulary."""
    from safetensors.numpy import load_file

    checkpoint = tiny_hf_bert_checkpoint(tmp_path / "bert")
    config = load_config([], ["encoder.type=pretrained", f"encoder.preset={checkpoint}", "text.max_length=8"])
    tokenizer = build_tokenizer(config, [])
    assert tokenizer.vocabulary_size == VOCABULARY_SIZE
    ids = tokenizer(tf.constant(["what is your price?"]))
    assert ids.shape[0] == 1
    assert 4 <= ids.shape[1] <= 8  # [CLS] what is your price ? [SEP], padded to the batch's longest
    encoder = build_encoder(config.encoder, tokenizer.vocabulary_size, EmbeddingConfig())
    saved = load_file(str(checkpoint / "model.safetensors"))
    backbone = next(layer for layer in encoder.layers if isinstance(layer, keras_hub.models.Backbone))
    np.testing.assert_array_equal(
        backbone.get_layer("token_embedding").embeddings.numpy(), saved["embeddings.word_embeddings.weight"]
    )
    pooled = np.asarray(encoder(ids)["pooled_output"])
    assert pooled.shape == (1, 8)
    assert np.all(np.isfinite(pooled))
