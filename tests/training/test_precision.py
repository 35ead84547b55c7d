"""Mixed precision: the decision per device, and models built under a mixed policy."""

from pathlib import Path

import keras
import numpy as np
import pytest

from qa_assistant.data import load_qa_data
from qa_assistant.errors import UserError
from qa_assistant.tasks import get_task, task_names
from qa_assistant.training.fitting import build_training
from qa_assistant.training.precision import resolve_mixed_precision
from qa_assistant.training.strategy import make_placement
from tests.helpers import tiny_config


def test_mixed_precision_decision_per_device() -> None:
    assert resolve_mixed_precision("auto", device_types=["CPU"]) == "float32"
    assert resolve_mixed_precision("auto", device_types=["CPU", "GPU"]) == "mixed_float16"
    assert resolve_mixed_precision("auto", device_types=["CPU", "TPU"]) == "mixed_bfloat16"
    for devices in (["CPU"], ["CPU", "GPU"], ["CPU", "TPU"]):
        assert resolve_mixed_precision("off", device_types=devices) == "float32"
        assert resolve_mixed_precision("bfloat16", device_types=devices) == "mixed_bfloat16"
        assert resolve_mixed_precision("float16", device_types=devices) == "mixed_float16"
    with pytest.raises(UserError, match="unknown mixed precision 'half'"):
        resolve_mixed_precision("half", device_types=["CPU"])


@pytest.mark.filterwarnings("ignore:Your input ran out of data")
@pytest.mark.parametrize(
    ("task", "setting", "compute"),
    [
        # `lm` needs a pretrained causal LM checkpoint; its half-precision path is not tested here.
        *[(task, "bfloat16", "bfloat16") for task in task_names() if task != "lm"],
        ("classify", "float16", "float16"),
    ],
)
def test_every_task_computes_in_half_precision_with_float32_outputs(
    faq_csv: Path, task: str, setting: str, compute: str
) -> None:
    config = tiny_config(
        f"task.type={task}", f"train.mixed_precision={setting}", "train.jit_compile=false", train=faq_csv
    )
    model, train_ds, _, _ = build_training(get_task(config), load_qa_data(config), make_placement("default"))
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored after building

    layers = list(model._flatten_layers())
    assert any(layer.compute_dtype == compute for layer in layers if layer.weights)
    assert all(tensor.dtype == "float32" for tensor in keras.tree.flatten(model.outputs))
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer) == (setting == "float16")
    if compute == "float16":
        return  # CPUs emulate float16 math slowly; bfloat16 shows that a mixed model trains
    history = model.fit(train_ds, epochs=2, verbose=0, shuffle=False)
    assert np.all(np.isfinite(history.history["loss"]))
    assert history.history["loss"][-1] < history.history["loss"][0]
