"""Generating answers vs retrieving them, on the same split.

Trains the two generation configs (GRU encoder-decoder with Bahdanau
attention, Transformer encoder-decoder) on the same data and split, then
prints, for the held-out questions:

* BLEU / ROUGE-L / exact match against the reference answers, with greedy
  decoding and with beam search (width 4, the config's length penalty);
* perplexity and token accuracy (teacher-forced);
* training time and decoding speed (answers and answer tokens per second,
  greedy vs beam, batches of 32 questions), measured on this machine;
* the same text metrics for a retrieval answer: the training answer of the
  most similar training question (TF-IDF nearest neighbour), so one sees
  when writing a new answer beats picking a known one;
* a few questions with the reference and each model's answer.

Runs are kept under --output; rerunning reuses finished runs.

Usage:
    python experiments/compare_generation.py [--data F] [--test-data F] [--output DIR] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import tensorflow as tf

from qa_assistant.config import load_config
from qa_assistant.errors import run_script
from qa_assistant.layout import split_file
from qa_assistant.metrics.baselines import tfidf_nearest_answers
from qa_assistant.metrics.generation import evaluate_generation, text_metrics
from qa_assistant.metrics.ranking import format_columns, format_table
from qa_assistant.tasks.runs import load_run
from qa_assistant.training.runner import train_run

CONFIGS = {
    "GRU + Bahdanau attention": Path(__file__).parent / "configs" / "generate_gru_attention.yaml",
    "Transformer": Path(__file__).parent / "configs" / "generate_transformer.yaml",
}
KEYS = (
    "bleu",
    "rouge_l",
    "exact_match",
    "perplexity",
    "token_accuracy",
    "train_seconds",
    "answers_per_second",
    "tokens_per_second",
)
BEAM = 4
SHOWN = 6


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="builtin:chatterbot", help="Q/A file or builtin:chatterbot")
    parser.add_argument("--test-data", default=None, help="optional test file (else a random split)")
    parser.add_argument("--output", default="runs/compare_generation", help="root of the run directories")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    data = [f"data.train={json.dumps(args.data)}"]
    if args.test_data:
        data.append(f"data.test={json.dumps(args.test_data)}")
    run_dir, test = Path(), pd.DataFrame()
    rows: dict[str, dict[str, float]] = {}
    answers: dict[str, list[str]] = {}
    for name, path in CONFIGS.items():
        run_dir = Path(args.output) / path.stem
        config = load_config([path], [*data, *args.overrides])
        result = train_run(config, run_dir)
        print(
            f"[{name}] trained in {result.metrics['train_seconds']:.0f} s, {result.metrics['epochs_run']} epochs"
        )
        _, task, model = load_run(run_dir)
        generator = task.generator(model)
        test = pd.read_json(split_file(run_dir, "test"), lines=True, dtype=False)
        for strategy, width in (("greedy", 1), ("beam", BEAM)):
            beam = f" {width}, length penalty {config.decoding.length_penalty:g}"
            label = f"{name}, {strategy}" + (beam if strategy == "beam" else "")
            metrics, predicted = _decode(generator, test, strategy, width)
            rows[label] = {**metrics, "train_seconds": result.metrics["train_seconds"]}
            answers[label] = predicted
    # Every config splits the same data with the same seed: one split for all.
    train = pd.read_json(split_file(run_dir, "train"), lines=True, dtype=False)
    grouped = test.groupby("question", sort=False)["answer"].agg(list)
    retrieved = tfidf_nearest_answers(
        train["question"].tolist(), train["answer"].tolist(), grouped.index.tolist()
    )
    rows["TF-IDF retrieval of a training answer"] = text_metrics(grouped.tolist(), retrieved)
    answers["TF-IDF retrieval"] = retrieved

    print(
        f"\nHeld-out questions: {len(grouped)} ({len(test)} question/answer pairs); {len(train)} training pairs.\n"
    )
    print(format_table(rows, KEYS))
    print("\nSample answers (greedy):\n")
    columns = {"question": grouped.index.tolist(), "reference": [" / ".join(r) for r in grouped]}
    columns.update({label: texts for label, texts in answers.items() if "beam" not in label})
    print(format_columns(columns, SHOWN))
    return 0


def _decode(
    generator: Any, test: pd.DataFrame, strategy: str, width: int
) -> tuple[dict[str, float], list[str]]:
    """Held-out metrics with one decoding strategy, and answer tokens generated per second."""

    def answer(questions: list[str]) -> dict[str, tf.Tensor]:
        return generator.generate(
            tf.constant(questions), strategy, width, -1, -1.0, -1.0, -1, -1, -1.0, -1, -1.0, -1
        )

    def score(questions: list[str], answers: list[str]) -> dict[str, tf.Tensor]:
        return generator.score(tf.constant(questions), tf.constant(answers))

    questions = test["question"].unique().tolist()
    answer(questions[:2])  # trace once, outside the timing
    started = time.perf_counter()
    lengths = [answer(questions[i : i + 32])["length"] for i in range(0, len(questions), 32)]
    seconds = time.perf_counter() - started
    metrics, predictions = evaluate_generation(test, answer, score)
    metrics["answers_per_second"] = len(questions) / seconds
    metrics["tokens_per_second"] = float(sum(int(tf.reduce_sum(n)) for n in lengths)) / seconds
    return metrics, predictions["predicted"].tolist()


if __name__ == "__main__":
    run_script(main)
