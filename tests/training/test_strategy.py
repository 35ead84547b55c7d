import pytest
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.training.strategy import make_strategy, resolve_jit_compile


def test_jit_compile_decision() -> None:
    assert resolve_jit_compile("auto", device_types=["CPU"]) is True
    assert resolve_jit_compile("auto", device_types=["CPU", "GPU"]) is False
    assert resolve_jit_compile("auto", device_types=["CPU", "TPU"]) is False
    assert resolve_jit_compile("true", device_types=["CPU", "GPU"]) is True
    assert resolve_jit_compile("false", device_types=["CPU"]) is False


def test_strategies() -> None:
    assert make_strategy("default") is tf.distribute.get_strategy()
    assert make_strategy("auto").num_replicas_in_sync == 1
    with pytest.raises(UserError, match="unknown strategy 'x'"):
        make_strategy("x")
