"""Training throughput: the project's input pipeline and XLA against the naive way, side by side.

One process trains four copies of the same model (same config, same seed,
same training split) and times one epoch of each in turn, round after round:

| variant | input | XLA |
|---|---|---|
| `naive` | NumPy arrays padded to the longest question in the data, `fit(x, y)` | off |
| `bucketing` | the project's tf.data pipeline (bucketed by length, cached, prefetched) | off |
| `xla` | the naive arrays | on |
| `project` | the project's pipeline | what `train.jit_compile` resolves to (on, on CPU) |

The first epoch of each is a warm-up (tracing, XLA compilation for each
padded shape) and is not timed. Rounds rotate which variant goes first, so a
slower stretch of a shared machine does not fall on one variant; the report
gives medians and the median of each round's ratio to `naive`.

Run alone: `python -m qa_assistant.benchmark.training_speed CONFIG.yaml OUT.json [--repeats N] [--set k=v ...]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from qa_assistant.config import Config, load_config
from qa_assistant.data import load_qa_data
from qa_assistant.tasks import get_task
from qa_assistant.training.strategy import resolve_jit_compile

VARIANTS = ("naive", "bucketing", "xla", "project")


@dataclass
class TrainingSpeed:
    """Examples per second of each variant, one value per timed epoch.

    Attributes:
        examples: training examples per epoch.
        padded_width: the naive arrays' width (longest question, in tokens).
        mean_length: average question length in tokens.
        epochs: variant -> examples/second of each timed epoch.
        xla: variant -> whether its train step was XLA-compiled.
    """

    examples: int
    padded_width: int
    mean_length: float
    epochs: dict[str, list[float]] = field(default_factory=dict)
    xla: dict[str, bool] = field(default_factory=dict)

    def median(self, variant: str) -> float:
        return statistics.median(self.epochs[variant])

    def ratio(self, variant: str, baseline: str = "naive") -> float:
        """Median over rounds of `variant`'s throughput divided by `baseline`'s in the same round."""
        return statistics.median(
            a / b for a, b in zip(self.epochs[variant], self.epochs[baseline], strict=True)
        )


def measure_training(
    config: Config, *, repeats: int = 5, variants: tuple[str, ...] = VARIANTS
) -> TrainingSpeed:
    """Times `repeats` epochs of each variant after one warm-up epoch each.

    Args:
        config: the run config (the article GRU config in the benchmark).
        repeats: timed epochs per variant (rounds).
        variants: which of `VARIANTS` to run (`naive` is always included).

    Returns:
        The throughput of every timed epoch.

    Example:

    >>> speed = measure_training(load_config(["experiments/configs/article_gru.yaml"]))  # doctest: +SKIP
    >>> speed.ratio("project")  # doctest: +SKIP
    """
    variants = ("naive", *[v for v in variants if v != "naive"])
    keras.utils.set_random_seed(config.train.seed)
    data = load_qa_data(config)
    task = get_task(config)
    task.prepare(data)
    frame = data.splits.train
    ids = task.tokenizer.tokenize(tf.constant(frame["question"].tolist(), dtype=tf.string))
    arrays = ids.to_tensor().numpy(), task.label_ids(frame)
    pipeline = task.dataset(frame, training=True)
    project_jit = resolve_jit_compile(
        config.train.jit_compile, task=config.task.type, encoder=config.encoder.type
    )
    models, inputs = {}, {}
    result = TrainingSpeed(len(frame), int(arrays[0].shape[1]), float(np.mean(ids.row_lengths())))
    for variant in variants:
        keras.utils.set_random_seed(config.train.seed)
        model = task.build_model()
        jit = {"naive": False, "bucketing": False, "xla": True, "project": project_jit}[variant]
        task.compile(model, jit_compile=jit)
        models[variant] = model
        inputs[variant] = pipeline if variant in ("bucketing", "project") else arrays
        result.xla[variant] = jit
        result.epochs[variant] = []
        _epoch(model, inputs[variant], config.train.batch_size)  # warm-up: tracing and compilation
    for round_index in range(repeats):
        order = variants[round_index % len(variants) :] + variants[: round_index % len(variants)]
        for variant in order:
            seconds = _epoch(models[variant], inputs[variant], config.train.batch_size)
            result.epochs[variant].append(len(frame) / seconds)
    return result


def _epoch(
    model: keras.Model, data: tf.data.Dataset | tuple[np.ndarray, np.ndarray], batch_size: int
) -> float:
    started = time.perf_counter()
    if isinstance(data, tuple):  # the naive way: Keras slices and shuffles the arrays itself
        model.fit(*data, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    else:
        model.fit(data, epochs=1, shuffle=False, verbose=0)  # the dataset shuffles itself
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config")
    parser.add_argument("output")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", dest="overrides", nargs="*", default=[])
    args = parser.parse_args(argv)
    speed = measure_training(load_config([args.config], args.overrides), repeats=args.repeats)
    Path(args.output).write_text(json.dumps(asdict(speed), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
