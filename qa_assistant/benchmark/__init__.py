"""Speed and scale benchmark (issue 7): training throughput, serving latency, the README command, memory.

`run_benchmark(BenchmarkOptions(...))` runs it and writes its table into
BENCHMARKS.md; `qa-assistant benchmark` and `experiments/benchmark.py` are
the command-line forms. Each measured part runs in a child process:
`training_speed` and `serving_speed` can also be run alone.
"""

from qa_assistant.benchmark.harness import (
    DEFAULT_PARTS,
    PARTS,
    BenchmarkOptions,
    run_benchmark,
    serving_configs,
)

__all__ = ["DEFAULT_PARTS", "PARTS", "BenchmarkOptions", "run_benchmark", "serving_configs"]
