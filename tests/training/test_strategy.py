"""Strategy, cluster role, batch size and XLA decisions: plain functions, no special hardware needed."""

import json

import pytest
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.training.strategy import (
    ClusterRole,
    choose_strategy,
    global_batch_size,
    make_placement,
    make_strategy,
    read_tf_config,
    resolve_jit_compile,
    tpu_address,
)


def test_jit_compile_decision_per_device() -> None:
    assert resolve_jit_compile("auto", device_types=["CPU"]) is True
    assert resolve_jit_compile("auto", device_types=["CPU", "GPU"]) is False  # keeps the cuDNN kernel
    assert resolve_jit_compile("auto", device_types=["CPU", "TPU"]) is False  # TPUStrategy compiles itself
    assert resolve_jit_compile("true", device_types=["CPU", "GPU"]) is True
    assert resolve_jit_compile("false", device_types=["CPU"]) is False


def test_jit_compile_decision_per_strategy_and_model() -> None:
    for strategy in ("mirrored", "multi_worker", "tpu"):
        assert resolve_jit_compile("auto", device_types=["CPU"], strategy=strategy) is False
    for strategy in ("mirrored", "multi_worker"):
        with pytest.raises(UserError, match=f"train.jit_compile is true.*'{strategy}'"):
            resolve_jit_compile("true", device_types=["CPU"], strategy=strategy)
    assert resolve_jit_compile("false", device_types=["CPU"], strategy="multi_worker") is False
    # Measured slower with XLA on CPU (BENCHMARKS.md): auto leaves it off, true still forces it.
    assert resolve_jit_compile("auto", device_types=["CPU"], task="generate") is False
    assert resolve_jit_compile("auto", device_types=["CPU"], encoder="pretrained") is False
    assert resolve_jit_compile("true", device_types=["CPU"], encoder="pretrained") is True
    assert resolve_jit_compile("auto", device_types=["CPU"], task="retrieve", encoder="gru") is True


def test_auto_strategy_choice() -> None:
    choose = choose_strategy
    assert choose("auto", gpus=0, tpu_found=False, cluster_tasks=0) == "default"
    assert choose("auto", gpus=1, tpu_found=False, cluster_tasks=0) == "default"
    assert choose("auto", gpus=2, tpu_found=False, cluster_tasks=0) == "mirrored"
    assert choose("auto", gpus=0, tpu_found=True, cluster_tasks=0) == "tpu"
    assert choose("auto", gpus=8, tpu_found=False, cluster_tasks=3) == "multi_worker"
    assert choose("auto", gpus=2, tpu_found=False, cluster_tasks=1) == "mirrored"  # a cluster of one
    assert choose("default", gpus=4, tpu_found=True, cluster_tasks=2) == "default"
    with pytest.raises(UserError, match="unknown strategy 'x'; expected one of: auto, default"):
        choose("x", gpus=0, tpu_found=False, cluster_tasks=0)


def tf_config(cluster: dict, kind: str, index: int) -> dict[str, str]:
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}})}


def test_tf_config_roles() -> None:
    workers = {"worker": ["a:1", "b:1", "c:1"]}
    assert read_tf_config({}) is None
    assert read_tf_config({"TF_CONFIG": " "}) is None
    assert read_tf_config(tf_config(workers, "worker", 0)) == ClusterRole(tasks=3, index=0)
    assert read_tf_config(tf_config(workers, "worker", 2)).chief is False
    with_chief = {"chief": ["m:1"], "worker": ["a:1", "b:1"]}
    assert read_tf_config(tf_config(with_chief, "chief", 0)) == ClusterRole(tasks=3, index=0)
    assert read_tf_config(tf_config(with_chief, "worker", 0)) == ClusterRole(tasks=3, index=1)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"TF_CONFIG": "{cluster"}, "TF_CONFIG is not valid JSON"),
        ({"TF_CONFIG": '{"cluster": {"worker": ["a:1"]}}'}, "needs a 'cluster' and a 'task'"),
        (tf_config({"worker": ["a:1"], "ps": ["p:1"]}, "worker", 0), "ps tasks"),
        (tf_config({"worker": ["a:1"]}, "worker", 1), "index 1 is out of range: the cluster has 1 worker"),
        (tf_config({"worker": ["a:1"]}, "evaluator", 0), "not a training task"),
        (tf_config({"chief": ["a:1", "b:1"]}, "chief", 0), "2 chief tasks"),
    ],
)
def test_tf_config_errors_are_user_errors(environ: dict[str, str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        read_tf_config(environ)


def test_tpu_is_only_probed_on_a_hint() -> None:
    assert tpu_address({}) is None
    assert tpu_address({"TPU_NAME": "my-tpu"}) == "my-tpu"
    assert tpu_address({"COLAB_TPU_ADDR": "10.0.0.2:8470"}) == "grpc://10.0.0.2:8470"
    assert tpu_address({}, ["/dev/accel0"]) == "local"


def test_global_batch_size() -> None:
    assert global_batch_size(32, "global", 8) == 32
    assert global_batch_size(32, "replica", 8) == 256
    assert global_batch_size(32, "replica", 1) == 32


def test_placements_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert make_strategy("default") is tf.distribute.get_strategy()
    placement = make_placement("auto")
    assert (placement.name, placement.replicas, placement.chief, placement.replicated) == (
        "default",
        1,
        True,
        False,
    )
    assert "CPU" in placement.device_types
    with pytest.raises(UserError, match="unknown strategy 'x'"):
        make_strategy("x")
    with pytest.raises(UserError, match="'multi_worker' but TF_CONFIG is not set"):
        make_placement("multi_worker")
    with pytest.raises(UserError, match="'tpu' but no TPU was found"):
        make_placement("tpu")
