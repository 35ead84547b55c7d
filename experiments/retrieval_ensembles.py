"""Two cheap ways to lift a fine-tuned dual encoder, measured on finished runs.

Reads the fine-tuned runs that compare_retrieval.py leaves (RUNS/seed-N/SYSTEM, one
per split; SYSTEM is `pretrained` for MiniLM, the default, or `mpnet`) and, on each
split, scores two post-hoc combinations that need no training:

  lexical fusion    score = dense cosine + w × TF-IDF cosine (compare_retrieval's TF-IDF:
                    word 1-2-grams, an answer is its text plus its training questions)
  weight averaging  the encoder's weights a × fine-tuned + (1 − a) × pretrained
                    (WiSE-FT, Wortsman et al. 2022); a = 1 is the run as trained

Every grid point ranks the run's validation and test questions against the whole bank.
The weight that each split's validation recall@1 prefers (ties go to the plain
fine-tuned model) is the one reported, as a user without test labels would choose it;
test recall@1 at every grid point is printed beside it. Each fixed grid value (the
same on every split, as a config key sets it) and the chosen combination are compared
with the plain fine-tuned model over the same splits (corrected resampled paired
t-tests, Holm over the rows). Tables go to RUNS/retrieval_ensembles_SYSTEM.md.

Usage:
    python experiments/compare_retrieval.py ... --systems pretrained --seeds 1 2 3 4 5 --output RUNS
    python experiments/retrieval_ensembles.py RUNS [--system mpnet]
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from qa_assistant.analysis.report import paired_tests_table
from qa_assistant.analysis.statistics import fold_summary
from qa_assistant.atomic import write_text
from qa_assistant.errors import UserError, run_script
from qa_assistant.layout import split_file
from qa_assistant.metrics.baselines import tfidf_answer_scores
from qa_assistant.metrics.ranking import rank_candidates, ranking_metrics
from qa_assistant.tasks.retrieval.task import average_weights, check_not_averaged
from qa_assistant.tasks.runs import load_run

FUSION_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)  # 0: the run as trained
AVERAGING_WEIGHTS = (1.0, 0.75, 0.5, 0.25, 0.0)  # 1: the run as trained, 0: the pretrained encoder
SPLITS = ("validation", "test")

# method -> split -> grid value -> recall@1, for one run
Scores = dict[str, dict[str, dict[float, float]]]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="compare_retrieval.py's --output, holding seed-N/SYSTEM runs")
    parser.add_argument(
        "--system", default="pretrained", help="which fine-tuned system's runs: pretrained (MiniLM) or mpnet"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    root = Path(args.runs)
    runs = sorted(root.glob(f"seed-*/{args.system}"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not runs:
        raise UserError(
            f"no seed-N/{args.system} runs under '{root}'; expected compare_retrieval.py's --output"
        )
    scores, ratios = [], []
    for run in runs:
        found, ratio = score_run(run)
        scores.append(found)
        ratios.append(ratio)
        print(f"{run}: " + "; ".join(f"{m} test {found[m]['test']}" for m in found), flush=True)
    report = "\n\n".join(
        method_report(method, [s[method] for s in scores], sum(ratios) / len(ratios), plain)
        for method, plain in (("lexical fusion", 0.0), ("weight averaging", 1.0))
    )
    report = f"{len(runs)} splits ({', '.join(r.parent.name for r in runs)}), recall@1:\n\n{report}"
    tables = root / f"retrieval_ensembles_{args.system}.md"
    write_text(tables, report + "\n")
    print(f"\n{report}\n\ntables: {tables}")
    return 0


def score_run(run: Path) -> tuple[Scores, float]:
    """Recall@1 of every grid point of both methods on one run's validation and test questions."""
    config, task, model = load_run(run)
    check_not_averaged(config, run)  # its weights are averaged here, at each grid share
    frames = {name: pd.read_json(split_file(run, name), lines=True) for name in ("train", *SPLITS)}
    train = frames["train"]

    def recall_at_1(scores: np.ndarray, references: list[list[str]], bank: list[str]) -> float:
        return ranking_metrics(rank_candidates(scores, bank, references).rank)["recall_at_1"]

    found: Scores = {"lexical fusion": {}, "weight averaging": {}}
    for name in SPLITS:
        questions, references, bank, cosine = task.bank_scores(model, frames[name])
        lexical = tfidf_answer_scores(train["question"].tolist(), train["answer"].tolist(), questions, bank)
        found["lexical fusion"][name] = {
            w: recall_at_1(cosine + w * lexical, references, bank) for w in FUSION_WEIGHTS
        }

    tuned = [v.numpy() for v in model.weights]
    pretrained = {v.path: v.numpy() for v in task.build_model().weights}  # the preset's weights, untrained
    if [(v.path, v.shape) for v in model.weights] != [(k, w.shape) for k, w in pretrained.items()]:
        raise UserError(f"'{run}': the trained model's weights do not match its preset's")
    for a in AVERAGING_WEIGHTS:
        model.set_weights(tuned)
        average_weights(model, pretrained, a)  # what `task.weight_averaging: a` does after training
        for name in SPLITS:
            _, references, bank, cosine = task.bank_scores(model, frames[name])
            found["weight averaging"].setdefault(name, {})[a] = recall_at_1(cosine, references, bank)
    return found, len(frames["test"]) / len(train)


def chosen(validation: dict[float, float], plain: float) -> float:
    """The grid value with the best validation recall@1; ties go to `plain`, then to the one nearest it."""
    return max(validation, key=lambda w: (validation[w], w == plain, -abs(w - plain)))


def method_report(
    method: str, runs: Sequence[dict[str, dict[float, float]]], ratio: float, plain: float
) -> str:
    """Markdown: recall@1 per grid value (validation and test), then the validation-chosen value against `plain`."""
    name = "w" if method == "lexical fusion" else "a"
    lines = [
        f"**{method}**",
        "",
        f"| {name} | validation | test |",
        "|---:|---:|---:|",
    ]
    for value in runs[0]["test"]:
        cells = [fold_summary([run[s][value] for run in runs]).shown() for s in SPLITS]
        lines.append(f"| {value:g}{' (as trained)' if value == plain else ''} | " + " | ".join(cells) + " |")
    picks = [chosen(run["validation"], plain) for run in runs]
    picked = [run["test"][w] for run, w in zip(runs, picks, strict=True)]
    as_trained = [run["test"][plain] for run in runs]
    # Each fixed value (as a config key sets it), then the per-split validation choice.
    compared = {
        f"{method}, {name} = {value:g} on every split": (as_trained, [run["test"][value] for run in runs])
        for value in runs[0]["test"]
        if value != plain
    }
    compared[f"{method}, chosen on validation"] = (as_trained, picked)
    lines += [
        "",
        f"Chosen on each split's validation questions: {name} = {', '.join(f'{w:g}' for w in picks)}; "
        f"test recall@1 {fold_summary(picked).shown()} against {fold_summary(as_trained).shown()} as trained.",
        "",
        paired_tests_table(
            compared,
            ratio,
            row="comparison",
            difference="difference (test recall@1)",
        ),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    run_script(main)
