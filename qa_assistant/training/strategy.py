"""Where training runs: the distribution strategy, this process's role in it, the batch size, and XLA.

Each decision is a small function of plain inputs (device types, `TF_CONFIG`,
environment variables), so it is unit-tested without the hardware it
describes; `make_placement` applies them on the machine at hand.

`train.strategy`:

| setting | strategy | replicas |
|---|---|---|
| `default` | `tf.distribute.get_strategy()` | the one device TensorFlow picks (GPU 0 if any) |
| `mirrored` | `MirroredStrategy` | every local GPU, or every logical CPU when there is no GPU |
| `multi_worker` | `MultiWorkerMirroredStrategy` (reads `TF_CONFIG`) | every worker's GPUs (or CPU) |
| `tpu` | `TPUStrategy` | every TPU core the resolver finds |
| `auto` | the first that applies: `multi_worker` if `TF_CONFIG` names more than one task, `tpu` if a TPU resolver finds one, `mirrored` if there is more than one GPU, else `default` | |

A `MultiWorkerMirroredStrategy` must exist before TensorFlow runs its first
operation (it configures the collective ops of the process), so
`make_placement` is the first thing a training run does.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from qa_assistant.errors import UserError

log = logging.getLogger(__name__)

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "tpu")
_TASK_TYPES = ("chief", "worker")
# Device file of a TPU VM's first chip (TPU v4 and later).
_TPU_DEVICE_FILES = ("/dev/accel0",)

# -- TF_CONFIG ---------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRole:
    """This process's place in the cluster that `TF_CONFIG` describes.

    Attributes:
        tasks: number of training tasks (`chief` and `worker` entries).
        index: this task's rank: 0 is the chief (the `chief` task, or
            worker 0 when there is none), then the workers in order.
    """

    tasks: int
    index: int

    @property
    def chief(self) -> bool:
        return self.index == 0


def read_tf_config(environ: Mapping[str, str] | None = None) -> ClusterRole | None:
    """Parses `TF_CONFIG`; `None` when it is unset or empty.

    Raises:
        UserError: not JSON, or a cluster/task that multi-worker training
            cannot use (names what was received and what was expected).

    Example:

    >>> read_tf_config({"TF_CONFIG": '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}'})
    ClusterRole(tasks=2, index=1)
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        return None
    expected = (
        'expected JSON like {"cluster": {"worker": ["host1:port", "host2:port"]}, '
        '"task": {"type": "worker", "index": 0}}'
    )
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not valid JSON ({error.msg}); {expected}") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(f"TF_CONFIG needs a 'cluster' and a 'task' entry; got {raw[:200]!r}; {expected}")
    other = sorted(set(cluster) - set(_TASK_TYPES) - {"evaluator"})
    if other:
        raise UserError(
            f"TF_CONFIG cluster has {', '.join(other)} tasks (parameter servers?); multi-worker training "
            "uses only 'chief' and 'worker' tasks"
        )
    chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in _TASK_TYPES or not isinstance(index, int):
        raise UserError(f"TF_CONFIG task {task!r} is not a training task; expected type 'chief' or 'worker'")
    members = chiefs if kind == "chief" else workers
    if not 0 <= index < len(members):
        raise UserError(
            f"TF_CONFIG task index {index} is out of range: the cluster has {len(members)} {kind} task(s)"
        )
    if len(chiefs) > 1:
        raise UserError(f"TF_CONFIG names {len(chiefs)} chief tasks; expected at most one")
    return ClusterRole(
        tasks=len(chiefs) + len(workers), index=index + (len(chiefs) if kind == "worker" else 0)
    )


# -- TPU discovery -----------------------------------------------------------


def tpu_address(environ: Mapping[str, str], existing: Sequence[str] = ()) -> str | None:
    """What to hand `TPUClusterResolver`, or `None` when nothing hints at a TPU.

    `TPU_NAME` (a Cloud TPU's name or `grpc://` address), then Colab's
    `COLAB_TPU_ADDR`, then the device files of a TPU VM (`"local"`). Looking
    only at hints keeps `auto` from asking a metadata server on machines
    that have no TPU.

    Args:
        environ: environment variables.
        existing: the TPU device files present on this machine.
    """
    if environ.get("TPU_NAME"):
        return environ["TPU_NAME"]
    if environ.get("COLAB_TPU_ADDR"):
        return f"grpc://{environ['COLAB_TPU_ADDR']}"
    return "local" if existing else None


def _connect_tpu(address: str | None) -> tf.distribute.cluster_resolver.TPUClusterResolver:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=address)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return resolver


def _find_tpu(required: bool) -> tf.distribute.cluster_resolver.TPUClusterResolver | None:
    address = tpu_address(os.environ, [p for p in _TPU_DEVICE_FILES if Path(p).exists()])
    if address is None and not required:
        return None
    try:
        return _connect_tpu(address)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        if required:
            raise UserError(
                f"train.strategy is 'tpu' but no TPU was found ({str(error).splitlines()[0]}); set TPU_NAME "
                "to the TPU's name or grpc:// address (on a TPU VM it is found without it)"
            ) from None
        log.warning("a TPU seemed present (%s) but could not be reached: %s", address, error)
        return None


# -- strategy ----------------------------------------------------------------


def choose_strategy(setting: str, *, gpus: int, tpu_found: bool, cluster_tasks: int) -> str:
    """The strategy name `auto` (or an explicit setting) stands for.

    Args:
        setting: `train.strategy`.
        gpus: GPUs on this machine.
        tpu_found: whether a TPU resolver connected.
        cluster_tasks: training tasks that `TF_CONFIG` names (0 if unset).

    >>> choose_strategy("auto", gpus=4, tpu_found=False, cluster_tasks=0)
    'mirrored'
    >>> choose_strategy("auto", gpus=1, tpu_found=False, cluster_tasks=2)
    'multi_worker'
    """
    if setting not in STRATEGIES:
        raise UserError(f"unknown strategy '{setting}'; expected one of: {', '.join(STRATEGIES)}")
    if setting != "auto":
        return setting
    if cluster_tasks > 1:
        return "multi_worker"
    if tpu_found:
        return "tpu"
    return "mirrored" if gpus > 1 else "default"


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The `tf.distribute` strategy for a `train.strategy` setting."""
    return make_placement(name).strategy


def _mirrored_devices() -> list[str]:
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def _multi_worker(role: ClusterRole | None) -> tf.distribute.Strategy:
    if role is None:
        raise UserError(
            "train.strategy is 'multi_worker' but TF_CONFIG is not set; expected TF_CONFIG naming every "
            "worker and this one (see README, 'Several machines')"
        )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise UserError(
            "train.strategy is 'multi_worker' but TensorFlow was already running in this process; "
            "start each worker as its own `qa-assistant train` process"
        ) from None


# -- placement ---------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """A strategy and this process's role in it.

    Attributes:
        strategy: the `tf.distribute.Strategy` to build and train under.
        name: the resolved `train.strategy` (never `auto`).
        device_types: logical device types of this machine (`CPU`, `GPU`,
            `TPU`), which the XLA and precision decisions depend on.
        role: the cluster role (`multi_worker` only).
    """

    strategy: tf.distribute.Strategy
    name: str
    device_types: tuple[str, ...]
    role: ClusterRole | None = None

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    @property
    def multi_worker(self) -> bool:
        return self.name == "multi_worker"

    @property
    def replicated(self) -> bool:
        """Whether the model is replicated over devices or workers (trained by `distributed.fit`)."""
        return self.name in _REPLICATED

    @property
    def chief(self) -> bool:
        """Whether this process writes the run (always, except on non-chief workers)."""
        return self.role is None or self.role.chief

    @property
    def description(self) -> str:
        where = f"worker {self.role.index} of {self.role.tasks}, " if self.role else ""
        return f"{self.name} strategy ({where}{self.replicas} replica(s) in sync on {'/'.join(self.device_types)})"


def make_placement(setting: str) -> Placement:
    """Creates the strategy for `train.strategy` (call before any other TensorFlow work).

    Raises:
        UserError: `multi_worker` without a usable `TF_CONFIG`, `tpu`
            without a TPU, or an unknown setting.

    Example:

    >>> placement = make_placement("auto")  # doctest: +SKIP
    >>> with placement.strategy.scope():  # doctest: +SKIP
    ...     model = build_model()
    """
    role = read_tf_config() if setting in ("auto", "multi_worker") else None
    clustered = role is not None and role.tasks > 1
    # A TPU is looked for before anything else starts TensorFlow, except when
    # TF_CONFIG names a cluster (multi_worker wins under auto; see choose_strategy).
    probe_tpu = setting == "tpu" or (setting == "auto" and not clustered)
    resolver = _find_tpu(required=setting == "tpu") if probe_tpu else None
    # list_physical_devices does not start TensorFlow's runtime; the collective
    # setup of a multi-worker strategy needs it not started yet.
    gpus = len(tf.config.list_physical_devices("GPU"))
    name = choose_strategy(
        setting, gpus=gpus, tpu_found=resolver is not None, cluster_tasks=role.tasks if role else 0
    )
    if name == "multi_worker":
        strategy = _multi_worker(role)
    elif name == "tpu":
        strategy = tf.distribute.TPUStrategy(resolver)
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy(_mirrored_devices())
    else:
        strategy = tf.distribute.get_strategy()
    device_types = tuple(sorted({d.device_type for d in tf.config.list_logical_devices()}))
    placement = Placement(strategy, name, device_types, role if name == "multi_worker" else None)
    log.info("training with the %s", placement.description)
    return placement


def global_batch_size(batch_size: int, scope: str, replicas: int) -> int:
    """Examples per training step over all replicas (`train.batch_size_scope`).

    >>> global_batch_size(32, "global", 4), global_batch_size(32, "replica", 4)
    (32, 128)
    """
    if scope == "replica":
        return batch_size * replicas
    if scope == "global":
        return batch_size
    raise UserError(f"unknown batch size scope '{scope}'; expected one of: global, replica")


# -- XLA ---------------------------------------------------------------------

_REPLICATED = ("mirrored", "multi_worker")
# Measured on 2 CPU cores (BENCHMARKS.md; generation: experiments/generation_step_time.py):
# where XLA made training slower.
_XLA_SLOWER_ON_CPU = {
    ("task", "generate"): "a generator's train step ran 1.6-3.3x slower with XLA",
    ("encoder", "pretrained"): "compiling a pretrained Transformer cost more than it saved",
    ("task", "lm"): "compiling a pretrained Transformer cost more than it saved",
}


def resolve_jit_compile(
    setting: str,
    *,
    device_types: Sequence[str] | None = None,
    strategy: str = "default",
    task: str = "classify",
    encoder: str = "gru",
) -> bool:
    """Whether the train step is XLA-compiled: the one place this is decided.

    `auto`:

    * CPU only: on (Keras' own `"auto"` leaves it off there; explicit XLA
      cut the GRU classifier's time per epoch by 35-40 %), except where it
      was measured slower (generation, pretrained encoders);
    * GPU: off, so recurrent layers keep the fused cuDNN kernel (which XLA
      cannot compile; Keras would drop XLA for them anyway);
    * TPU: off here, because `TPUStrategy` compiles every step for the TPU
      itself (Keras, too, leaves its XLA flag off under `tf.distribute`);
    * `mirrored` and `multi_worker`: off, and `true` is refused: an XLA
      cluster cannot read variables held on another device (measured:
      "Trying to access resource ... located in device CPU:1 from device
      CPU:0" over two logical CPUs), nor compile the all-reduce of sparse
      (embedding) gradients across workers (`CollectiveGatherV2` has no XLA
      kernel).

    Args:
        setting: `train.jit_compile`: `auto`, `true` or `false`.
        device_types: logical device types present; read from TensorFlow
            when `None`.
        strategy: the resolved strategy name.
        task: `task.type`.
        encoder: `encoder.type`.

    Raises:
        UserError: `true` with a strategy that replicates the model over
            several devices, which cannot work.
    """
    if strategy in _REPLICATED and setting == "true":
        raise UserError(
            f"train.jit_compile is true, but XLA cannot compile a train step of train.strategy "
            f"'{strategy}' (its variables and all-reduce span several devices); expected jit_compile "
            "auto or false"
        )
    if setting in ("true", "false"):
        return setting == "true"
    if device_types is None:
        device_types = [d.device_type for d in tf.config.list_logical_devices()]
    if strategy != "default" or {"GPU", "TPU"} & set(device_types):
        return False
    for key in (("task", task), ("encoder", encoder)):
        if key in _XLA_SLOWER_ON_CPU:
            log.info("XLA off for %s %s on CPU: %s", key[0], key[1], _XLA_SLOWER_ON_CPU[key])
            return False
    return True
