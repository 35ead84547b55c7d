"""Speed and scale benchmark: training throughput, serving latency, the README command, memory.

`run_benchmark(BenchmarkOptions(...))` runs it and writes its table into
BENCHMARKS.md; `qa-assistant benchmark` is its command-line form.
Each measured part runs in a child process:
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
