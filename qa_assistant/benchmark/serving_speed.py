"""Serving speed of an export: `serving_default` of the reloaded SavedModel, as TF Serving would call it.

* latency of single questions (one per call): 50th, 95th and 99th percentile;
* throughput at batch 64: questions per second over whole-batch calls.

The process loads the export with TensorFlow (and tensorflow-text) only, as a
server would; questions are real ones (the run's test split), cycled. Calls
before timing warm the function up.

Run alone: `python -m qa_assistant.benchmark.serving_speed EXPORT QUESTIONS.json OUT.json [--requests N] [--batches N]`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

BATCH = 64


@dataclass
class ServingSpeed:
    """Timings of one export, in milliseconds and questions per second."""

    single_p50_ms: float
    single_p95_ms: float
    single_p99_ms: float
    single_requests: int
    batch_size: int
    batch_questions_per_second: float
    batch_p50_ms: float
    batches: int


def measure_serving(
    export_dir: str | Path, questions: list[str], *, requests: int = 300, batches: int = 30, warmup: int = 20
) -> ServingSpeed:
    """Times `serving_default` of the SavedModel in `export_dir`.

    Args:
        export_dir: a version directory (`saved_models/NAME/N`).
        questions: questions to send, cycled.
        requests: timed single-question calls.
        batches: timed calls of `BATCH` questions.
        warmup: untimed calls of each kind first.

    Example:

    >>> measure_serving("saved_models/chatterbot/1", ["What is AI?"]).single_p50_ms  # doctest: +SKIP
    """
    # TensorFlow only, like a server: the project's code is not loaded (nor counted in peak memory).
    import tensorflow as tf  # deferred: start-up time

    with contextlib.suppress(ImportError):
        import tensorflow_text  # noqa: F401  (registers ops such as NormalizeUTF8)
    serve = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
    pool = questions or ["What is AI?"]

    def call(texts: list[str]) -> float:
        started = time.perf_counter()
        outputs = serve(question=tf.constant(texts))
        for value in outputs.values():
            value.numpy()  # wait for the result, as a client would
        return (time.perf_counter() - started) * 1000

    singles = [call([pool[i % len(pool)]]) for i in range(warmup + requests)][warmup:]
    rng = np.random.default_rng(0)
    batch_ms = [call(list(rng.choice(pool, size=BATCH))) for _ in range(max(1, warmup // 4) + batches)]
    batch_ms = batch_ms[max(1, warmup // 4) :]
    return ServingSpeed(
        single_p50_ms=float(np.percentile(singles, 50)),
        single_p95_ms=float(np.percentile(singles, 95)),
        single_p99_ms=float(np.percentile(singles, 99)),
        single_requests=requests,
        batch_size=BATCH,
        batch_questions_per_second=BATCH * len(batch_ms) / (sum(batch_ms) / 1000),
        batch_p50_ms=float(np.percentile(batch_ms, 50)),
        batches=batches,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export")
    parser.add_argument("questions", help="JSON list of questions")
    parser.add_argument("output")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args(argv)
    questions = json.loads(Path(args.questions).read_text(encoding="utf-8"))
    speed = measure_serving(args.export, questions, requests=args.requests, batches=args.batches)
    Path(args.output).write_text(json.dumps(asdict(speed), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
