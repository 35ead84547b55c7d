"""Two fine-tuned dual encoders combined by their scores, measured on finished runs.

Reads the runs that compare_retrieval.py leaves for two systems on the same splits
(RUNS/seed-N/SYSTEM; by default `pretrained`, MiniLM, and `mpnet`) and ranks each
split's validation and test questions against the whole bank by

    score = (1 − w) × cosine under the first system + w × cosine under the second

for w on a grid (w = 0: the first system alone, w = 1: the second). Both cosines lie in
[−1, 1], so w weighs two comparable scales. The second system's encoder can first be
averaged with its pretrained weights (`--share`, as `task.weight_averaging` does after
training; `--share 0` is the untrained encoder, 1 the run as trained). The weight that
each split's validation recall@1 prefers is reported as a user without test labels would
choose it, and each fixed w is compared with each system alone over the same splits
(corrected resampled paired t-tests, Holm over the rows of each table). Tables go to
RUNS/retrieval_fusion_FIRST_SECOND.md.

Usage:
    python experiments/compare_retrieval.py ... --systems pretrained mpnet --seeds 1 2 3 4 5 --output RUNS
    python experiments/retrieval_fusion.py RUNS [--share 0.75 0]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from qa_assistant.analysis.report import paired_tests_table
from qa_assistant.analysis.statistics import fold_summary
from qa_assistant.atomic import write_text
from qa_assistant.errors import UserError, run_script
from qa_assistant.layout import split_file
from qa_assistant.metrics.ranking import rank_candidates, ranking_metrics
from qa_assistant.tasks.retrieval.task import average_weights, check_not_averaged
from qa_assistant.tasks.runs import load_run

FUSION_WEIGHTS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)  # share of the second system's cosine
SPLITS = ("validation", "test")

# (share, w) -> split -> recall@1, for one split's pair of runs
Scores = dict[tuple[float, float], dict[str, float]]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="compare_retrieval.py's --output, holding seed-N/SYSTEM runs")
    parser.add_argument(
        "--first", default="pretrained", help="the first system (default: pretrained, MiniLM)"
    )
    parser.add_argument("--second", default="mpnet", help="the second system (default: mpnet)")
    parser.add_argument(
        "--share",
        nargs="+",
        type=float,
        default=[0.75, 0.0],
        help="the second encoder's weights as share × fine-tuned + (1 − share) × pretrained, one table each",
    )
    parser.add_argument(
        "--second-runs", default=None, help="where the second system's runs are, if elsewhere"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    root = Path(args.runs)
    second_root = Path(args.second_runs or args.runs)
    pairs = []
    for first in sorted(root.glob(f"seed-*/{args.first}"), key=lambda p: int(p.parent.name.split("-")[1])):
        second = second_root / first.parent.name / args.second
        if second.is_dir():
            pairs.append((first, second))
    if not pairs:
        raise UserError(
            f"no split has both seed-N/{args.first} under '{root}' and seed-N/{args.second} "
            f"under '{second_root}'; expected compare_retrieval.py's --output"
        )
    scores, ratios = [], []
    for first, second in pairs:
        found, ratio = score_pair(first, second, args.share)
        scores.append(found)
        ratios.append(ratio)
        print(
            f"{first.parent.name}: " + "; ".join(f"{k}: {v['test']:.3f}" for k, v in found.items()),
            flush=True,
        )
    report = "\n\n".join(share_report(share, scores, sum(ratios) / len(ratios), args) for share in args.share)
    report = (
        f"{len(pairs)} splits ({', '.join(p.parent.name for p, _ in pairs)}), recall@1 of "
        f"(1 − w) × {args.first} + w × {args.second}:\n\n{report}"
    )
    tables = root / f"retrieval_fusion_{args.first}_{args.second}.md"
    write_text(tables, report + "\n")
    print(f"\n{report}\n\ntables: {tables}")
    return 0


def score_pair(first: Path, second: Path, shares: list[float]) -> tuple[Scores, float]:
    """Recall@1 of every (share, w) on one split's validation and test questions."""
    _, task_a, model_a = load_run(first)
    config_b, task_b, model_b = load_run(second)
    check_not_averaged(config_b, second)  # its weights are averaged here, at each --share
    frames = {name: pd.read_json(split_file(first, name), lines=True) for name in ("train", *SPLITS)}
    test_b = pd.read_json(split_file(second, "test"), lines=True)
    if sorted(test_b["question"]) != sorted(frames["test"]["question"]):
        raise UserError(f"'{first}' and '{second}' were tested on different questions: not the same split")
    cosine_a = {name: task_a.bank_scores(model_a, frames[name]) for name in SPLITS}

    tuned = [v.numpy() for v in model_b.weights]
    pretrained = {v.path: v.numpy() for v in task_b.build_model().weights}
    found: Scores = {}
    for share in shares:
        model_b.set_weights(tuned)
        average_weights(model_b, pretrained, share)
        for name in SPLITS:
            questions, references, bank, scores_a = cosine_a[name]
            questions_b, _, bank_b, scores_b = task_b.bank_scores(model_b, frames[name])
            scores_b = aligned(questions_b, bank_b, scores_b, questions, bank)
            for w in FUSION_WEIGHTS:
                fused = (1 - w) * scores_a + w * scores_b
                ranks = rank_candidates(fused, bank, references).rank
                found.setdefault((share, w), {})[name] = ranking_metrics(ranks)["recall_at_1"]
    return found, len(frames["test"]) / len(frames["train"])


def aligned(
    questions_b: list[str], bank_b: list[str], scores_b: np.ndarray, questions: list[str], bank: list[str]
) -> np.ndarray:
    """`scores_b` `[question, answer]` reordered to the rows of `questions` and the columns of `bank`.

    Raises:
        UserError: the two systems did not score the same questions against the same bank.
    """
    if sorted(questions_b) != sorted(questions) or sorted(bank_b) != sorted(bank):
        raise UserError("the two systems scored different questions or banks: not runs of the same split")
    rows = {q: i for i, q in enumerate(questions_b)}
    columns = {a: j for j, a in enumerate(bank_b)}
    return scores_b[np.ix_([rows[q] for q in questions], [columns[a] for a in bank])]


def share_report(share: float, runs: list[Scores], ratio: float, args: argparse.Namespace) -> str:
    """Markdown: recall@1 per w (validation and test), then each w and the validation choice against either system alone."""
    lines = [
        f"**{args.second} at share {share:g} of its fine-tuned weights**",
        "",
        "| w | validation | test | test per split |",
        "|---:|---:|---:|---|",
    ]
    for w in FUSION_WEIGHTS:
        cells = [fold_summary([run[(share, w)][s] for run in runs]).shown() for s in SPLITS]
        per_split = " / ".join(f"{run[(share, w)]['test']:.3f}" for run in runs)
        lines.append(f"| {w:g} | " + " | ".join(cells) + f" | {per_split} |")
    picks = [max(FUSION_WEIGHTS, key=lambda w, r=run: (r[(share, w)]["validation"], -w)) for run in runs]
    picked = [run[(share, w)]["test"] for run, w in zip(runs, picks, strict=True)]
    lines += [
        "",
        f"Chosen on each split's validation questions: w = {', '.join(f'{w:g}' for w in picks)}; "
        f"test recall@1 {fold_summary(picked).shown()}.",
    ]
    for end, system in ((0.0, args.first), (1.0, args.second)):
        alone = [run[(share, end)]["test"] for run in runs]
        compared = {
            f"w = {w:g} on every split": (alone, [run[(share, w)]["test"] for run in runs])
            for w in FUSION_WEIGHTS
            if w not in (0.0, 1.0)
        }
        compared["w chosen on validation"] = (alone, picked)
        lines += [
            "",
            paired_tests_table(
                compared,
                ratio,
                row=f"against {system} alone (w = {end:g})",
                difference="difference (test recall@1)",
            ),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    run_script(main)
