import keras
import numpy as np
import pytest

from qa_assistant.models.layers import MaskedPooling

X = np.array([[[1.0, -2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 6.0], [0.0, 0.0], [0.0, 0.0]]], "float32")
MASK = np.array([[True, True, False], [True, False, False]])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("mean", [[2.0, 1.0], [5.0, 6.0]]),
        ("max", [[3.0, 4.0], [5.0, 6.0]]),
        ("first", [[1.0, -2.0], [5.0, 6.0]]),
    ],
)
def test_pooling_ignores_padding(mode: str, expected: list) -> None:
    assert np.allclose(MaskedPooling(mode)(X, padding_mask=MASK), expected)


def test_no_mask_pools_everything() -> None:
    assert np.allclose(MaskedPooling("mean")(X[:1]), [[104 / 3, 102 / 3]])


def test_config_round_trip_and_bad_mode() -> None:
    layer = MaskedPooling("max", name="p")
    clone = MaskedPooling.from_config(layer.get_config())
    assert clone.mode == "max"
    assert clone.name == "p"
    assert keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer)).mode == "max"
    with pytest.raises(ValueError, match="mode must be"):
        MaskedPooling("sum")
