"""What reliability costs: per-epoch resume snapshots, hostile requests, a 200,000-row file.

Usage:

    python experiments/reliability_overheads.py --output /tmp/reliability [--epochs 5] [--rows 200000]

Prints three tables (seconds, medians where repeated):

1. The article's GRU config on `builtin:chatterbot` for a few epochs: time per
   epoch, time of the atomic resume snapshot written after each epoch, and the
   snapshot's size.
2. That run's export answering one short question, one of 100,000 characters
   (cleaning reads only `text.max_chars`), 1,000 short questions, and 1,000
   hostile ones (empty, emoji/CJK/RTL, control characters, 100,000 characters).
3. A generated CSV of `--rows` rows: read, clean (the in-graph cleaning), split.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from qa_assistant.config import TextConfig, load_config
from qa_assistant.data.prepare import clean_pairs
from qa_assistant.data.sources import load_pairs
from qa_assistant.data.split import SplitPlan, split_classification
from qa_assistant.serving import Assistant, export_run
from qa_assistant.training import resume
from qa_assistant.training.runner import train_run

CONFIG = Path(__file__).parent / "configs" / "article_gru.yaml"


def snapshot_costs(output: Path, epochs: int) -> Path:
    saves: list[tuple[float, int]] = []
    save = resume.TrainingState._save

    def timed_save(self: resume.TrainingState, epochs_done: int) -> None:
        started = time.perf_counter()
        save(self, epochs_done)
        seconds = time.perf_counter() - started
        size = sum(
            p.stat().st_size for p in (self.directory / f"state-{epochs_done:06d}").rglob("*") if p.is_file()
        )
        saves.append((seconds, size))

    resume.TrainingState._save = timed_save
    try:
        config = load_config([CONFIG], [f"train.epochs={epochs}", "train.early_stopping=0"])
        result = train_run(config, output / "run", restart=(output / "run").exists())
    finally:
        resume.TrainingState._save = save
    per_epoch = result.metrics["train_seconds"] / result.metrics["epochs_run"]
    save_seconds = statistics.median(s for s, _ in saves)
    print(f"\n1. resume snapshots ({config.encoder.type} {config.encoder.units} units, {epochs} epochs)")
    print("| epoch (s) | snapshot save (s) | share of the epoch | snapshot size (MB) |")
    print("|---|---|---|---|")
    print(
        f"| {per_epoch:.2f} | {save_seconds:.3f} | {save_seconds / per_epoch:.1%} | {saves[-1][1] / 1e6:.1f} |"
    )
    return result.run_dir


def request_costs(run_dir: Path, output: Path) -> None:
    version = export_run(run_dir, "reliability", output / "saved_models")
    bot = Assistant(version)
    hostile = ["", "  \t ", "💸 价格 מה המחיר", "\x00\x07\x1b[31m", "x" * 100_000]
    batches = {
        "1 short question": ["What is AI?"],
        "1 question of 100,000 characters": ["What is AI? " * 8334],
        "1,000 short questions": ["What is AI?"] * 1000,
        "1,000 hostile questions": [hostile[i % len(hostile)] for i in range(1000)],
    }
    print(f"\n2. answering from {version}")
    print("| request | seconds (median of 5) |")
    print("|---|---|")
    bot.raw(["warm up"])
    for name, questions in batches.items():
        times = []
        for _ in range(5):
            started = time.perf_counter()
            bot.raw(questions)
            times.append(time.perf_counter() - started)
        print(f"| {name} | {statistics.median(times):.4f} |")


def big_file_costs(output: Path, rows: int) -> None:
    rng = np.random.default_rng(0)
    words = np.array(["what", "is", "the", "price", "of", "shipping", "refund", "hours", "email", "plan"])
    path = output / f"rows_{rows}.csv"
    pd.DataFrame(
        {
            "question": [" ".join(rng.choice(words, 6)) + f" {i}" for i in range(rows)],
            "answer": [f"answer {i % 500}" for i in range(rows)],
        }
    ).to_csv(path, index=False)
    timings = {}
    started = time.perf_counter()
    raw, _ = load_pairs(str(path))
    timings["read"] = time.perf_counter() - started
    started = time.perf_counter()
    clean, _ = clean_pairs(raw, TextConfig())
    timings["clean"] = time.perf_counter() - started
    started = time.perf_counter()
    splits = split_classification(
        clean, "answer", SplitPlan(validation_fraction=0.1, test_fraction=0.2, seed=42)
    )
    timings["split"] = time.perf_counter() - started
    print(f"\n3. a {rows:,}-row CSV ({path.stat().st_size / 1e6:.1f} MB), split {splits.method}")
    print("| read (s) | clean (s) | split (s) |")
    print("|---|---|---|")
    print(f"| {timings['read']:.2f} | {timings['clean']:.2f} | {timings['split']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    run_dir = snapshot_costs(args.output, args.epochs)
    request_costs(run_dir, args.output)
    big_file_costs(args.output, args.rows)


if __name__ == "__main__":
    main()
