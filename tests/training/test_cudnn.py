"""The cuDNN check: which recurrent-layer settings keep a GRU/LSTM off the fused GPU kernel."""

import keras
import pytest

from qa_assistant.config import EmbeddingConfig, EncoderConfig
from qa_assistant.models.encoders import build_encoder
from qa_assistant.training.cudnn import cudnn_blockers, cudnn_warnings

FUSED = {
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "recurrent_dropout": 0.0,
    "unroll": False,
    "use_bias": True,
    "reset_after": True,
    "use_cudnn": "auto",
}


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_defaults_use_the_fused_kernel(kind: str) -> None:
    assert cudnn_blockers(kind, FUSED) == []


@pytest.mark.parametrize(
    ("change", "blocker"),
    [
        ({"recurrent_dropout": 0.25}, "recurrent_dropout=0.25"),
        ({"activation": "relu"}, "activation=relu"),
        ({"recurrent_activation": "hard_sigmoid"}, "recurrent_activation=hard_sigmoid"),
        ({"unroll": True}, "unroll=True"),
        ({"use_bias": False}, "use_bias=False"),
        ({"use_cudnn": False}, "use_cudnn=False"),
    ],
)
def test_each_blocking_setting_is_named(change: dict, blocker: str) -> None:
    for kind in ("gru", "lstm"):
        assert cudnn_blockers(kind, {**FUSED, **change}) == [blocker]


def test_reset_after_matters_for_gru_only() -> None:
    assert cudnn_blockers("gru", {**FUSED, "reset_after": False}) == ["reset_after=False"]
    assert cudnn_blockers("lstm", {**FUSED, "reset_after": False}) == []


def encoder(**settings: object) -> keras.Model:
    return build_encoder(EncoderConfig(units=4, **settings), 20, EmbeddingConfig(dim=4))


def test_warning_names_the_config_key_on_a_gpu_only() -> None:
    model = encoder(type="gru", recurrent_dropout=0.2, bidirectional=True)
    messages = cudnn_warnings(model, ["CPU", "GPU"])
    assert len(messages) == 2  # both directions
    assert all("encoder.recurrent_dropout=0.2" in m and "cuDNN" in m for m in messages)
    assert "encoder/bidirectional_0/forward_gru_0" in messages[0]
    assert cudnn_warnings(model, ["CPU"]) == []  # nothing to lose without a GPU


@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_project_encoders_use_the_fused_kernel(kind: str) -> None:
    model = encoder(type=kind, layers=2, bidirectional=True, dropout=0.3)
    assert cudnn_warnings(model, ["CPU", "GPU"]) == []


def test_layer_settings_without_a_config_key_name_the_layer() -> None:
    inputs = keras.Input((None, 3))
    outputs = keras.layers.LSTM(4, activation="relu", name="plain")(inputs)
    (message,) = cudnn_warnings(keras.Model(inputs, outputs, name="toy"), ["GPU"])
    assert "LSTM layer 'toy/plain'" in message
    assert "because of layer activation=relu" in message
