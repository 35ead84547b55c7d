"""Train-step time of the generation models with and without XLA.

Why `train.jit_compile: auto` leaves XLA off for generation: this script
times `train_on_batch` for each generation config on the same batches (the
builtin corpus, batches of 32 padded to 16 tokens), once compiled with XLA and
once with TensorFlow's own kernels, after a warm-up step that absorbs the
compilation.

Usage:
    python experiments/generation_step_time.py [--steps 15] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import keras

from qa_assistant.config import load_config
from qa_assistant.data import load_qa_data
from qa_assistant.metrics.generation import masked_loss
from qa_assistant.metrics.ranking import format_table
from qa_assistant.tasks import get_task

CONFIGS = {
    "GRU + Bahdanau attention": Path(__file__).parent / "configs" / "generate_gru_attention.yaml",
    "Transformer": Path(__file__).parent / "configs" / "generate_transformer.yaml",
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=15, help="timed steps per setting")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    rows = {}
    for name, path in CONFIGS.items():
        config = load_config([path], args.overrides)
        task = get_task(config)
        data = load_qa_data(config)
        task.prepare(data)
        batches = [
            b
            for b in task.dataset(data.splits.train, training=False)
            if tuple(b[0]["token_ids"].shape) == (32, 16)
        ][:3]
        row = {}
        for jit in (True, False):
            keras.utils.set_random_seed(config.train.seed)
            model = task.build_model()
            model.compile(optimizer="adam", loss=masked_loss(), jit_compile=jit)
            model.train_on_batch(*batches[0])  # compiles
            started = time.perf_counter()
            for step in range(args.steps):
                model.train_on_batch(*batches[step % len(batches)])
            row["XLA" if jit else "no XLA"] = (time.perf_counter() - started) / args.steps
        row["XLA / no XLA"] = row["XLA"] / row["no XLA"]
        rows[name] = row
        print(f"[{name}] {row}", flush=True)
    print("\nSeconds per train step (batch 32, 16 tokens):\n")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
