"""Speed and scale benchmark (issue 7); the same as `qa-assistant benchmark`.

Usage, from the repository root:

    python experiments/benchmark.py                  # training and serving; writes BENCHMARKS.md ("Speed and scale")
    python experiments/benchmark.py --provisional    # the same, marked as measured on a shared machine
    python experiments/benchmark.py --quick          # a small run that checks it works
    python experiments/benchmark.py --parts training,serving,readme   # also the README command (minutes)
    python experiments/benchmark.py --parts training --repeats 9 --output -

It measures, each part in its own process (see `qa_assistant/benchmark/`):

1. training throughput of `experiments/configs/article_gru.yaml` with the project's
   pipeline (bucketed tf.data, cache, prefetch) and XLA, against the same model trained
   the naive way (NumPy arrays padded to the longest question, no XLA), plus each of the
   two changes alone; one process, epochs timed in turn, medians and their ratio;
2. single-question latency (p50, p95, p99) and throughput at batch 64 of an export of every
   task in the catalogue, calling `serving_default` of the reloaded SavedModel;
3. with `--parts ...,readme`, the wall time of the README's main command, step by step;
4. the peak memory of each of those processes.

Timings depend on the machine and on what else runs on it: the table records the CPU,
the accelerators and the load average at the start. Compare ratios, not seconds.
"""

from __future__ import annotations

import sys

from qa_assistant.cli import main

if __name__ == "__main__":
    sys.exit(main(["benchmark", *sys.argv[1:]]))
