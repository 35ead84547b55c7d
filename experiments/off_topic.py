"""Declining off-topic requests (`lm.decline_below: auto`), measured on finished retrieval runs.

A grounded LM declines a request whose first grounding note scores below a
threshold set on the validation questions (`tasks/lm/declining.py`: at least
`keep` of in-domain requests answered). The decision comes before any text is
generated, so it is measured here from the retrievers alone, without training
a language model: for each retrieval run that compare_retrieval.py leaves
(RUNS/seed-N/SYSTEM), both groundings a language model can use on that split,

  run      the run's dual encoder over its answer bank (`lm.grounding: RUN_DIR`)
  tfidf    TF-IDF over the split's training pairs (`lm.grounding: tfidf`)

set the threshold on the split's validation questions, exactly as
`LanguageModelTask.finalize` does, then count the split's test questions
(in-domain: their answers are in the data) that are answered, and the
questions of each --off-topic file (another domain) that are declined.
AUROC is the threshold-free view: the chance that an in-domain test question
scores above an off-topic one. What declining costs in-domain: the first
note's recall@1 over all test questions and over the answered ones, and the
shares of right and of wrong first notes that fall below the threshold. Tables go to RUNS/off_topic_SYSTEM.md, the
per-split numbers to RUNS/off_topic_SYSTEM.csv.

Usage:
    python experiments/compare_retrieval.py --data F ... --systems pretrained --seeds 1 2 3 4 5 --output RUNS
    python experiments/off_topic.py RUNS --off-topic trec=trec6_test.csv faq=other_faq.csv@q [--keep 0.9 0.95 0.99]
"""

from __future__ import annotations

import argparse
import csv
import io
import logging
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from qa_assistant.analysis.report import mean_std_cells
from qa_assistant.atomic import write_text
from qa_assistant.errors import UserError, run_script
from qa_assistant.layout import split_file
from qa_assistant.tasks.lm.declining import first_note_scores, first_notes
from qa_assistant.tasks.lm.grounding import TfidfRetriever
from qa_assistant.tasks.lm.task import run_retriever
from qa_assistant.tasks.retrieval.bank import conformal_threshold

GROUNDINGS = ("run", "tfidf")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", help="compare_retrieval.py's --output, holding seed-N/SYSTEM runs")
    parser.add_argument(
        "--system", default="pretrained", help="the runs' system (default: pretrained, MiniLM)"
    )
    parser.add_argument(
        "--off-topic",
        nargs="+",
        required=True,
        metavar="NAME=FILE",
        help="questions of other domains: a CSV/TSV/JSONL file and its question column (default 'question')",
    )
    parser.add_argument(
        "--keep",
        nargs="+",
        type=float,
        default=[0.9, 0.95, 0.99],
        help="lm.decline_keep values, one table row each",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    off_topic = dict(_named_file(spec) for spec in args.off_topic)
    root = Path(args.runs)
    runs = sorted(root.glob(f"seed-*/{args.system}"), key=lambda p: int(p.parent.name.split("-")[1]))
    if not runs:
        raise UserError(
            f"no seed-N/{args.system} run under '{root}'; expected compare_retrieval.py's --output"
        )
    rows = []
    for run in runs:
        for row in score_run(run, off_topic, args.keep):
            rows.append({"split": run.parent.name, **row})
            print(_row_line(row, off_topic), flush=True)
    report = _report(rows, off_topic, args.keep, runs)
    write_text(root / f"off_topic_{args.system}.md", report + "\n")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    write_text(root / f"off_topic_{args.system}.csv", buffer.getvalue())
    print(f"\n{report}\n\ntables: {root / f'off_topic_{args.system}.md'}")
    return 0


def _named_file(spec: str) -> tuple[str, list[str]]:
    name, sep, path = spec.partition("=")
    path, at, column = path.partition("@")
    column = column if at else "question"
    if not sep or not name or not path or not column:
        raise UserError(f"--off-topic takes NAME=FILE or NAME=FILE@COLUMN; got '{spec}'")
    if not Path(path).is_file():
        raise UserError(f"--off-topic '{path}' is not a file; expected a CSV, TSV or JSONL file of questions")
    if path.endswith(".jsonl"):
        frame = pd.read_json(path, lines=True, dtype=False)
    else:
        frame = pd.read_csv(
            path, sep="\t" if path.endswith(".tsv") else ",", dtype=str, keep_default_na=False
        )
    if column not in frame:
        raise UserError(
            f"--off-topic '{path}' has no '{column}' column; got {', '.join(map(str, frame.columns))}"
        )
    questions = frame[column].astype(str).str.strip().drop_duplicates().tolist()
    return name, questions


def score_run(run: Path, off_topic: dict[str, list[str]], keeps: list[float]) -> list[dict[str, object]]:
    """One row per grounding and keep: the threshold, the in-domain test share answered, each off-topic share declined."""
    frames = {
        name: pd.read_json(split_file(run, name), lines=True, dtype=False)
        for name in ("train", "validation", "test")
    }
    retrievers = {
        "run": run_retriever(str(run)),
        "tfidf": TfidfRetriever(frames["train"]["question"].tolist(), frames["train"]["answer"].tolist()),
    }
    rows = []
    for grounding, retriever in retrievers.items():
        validation = first_note_scores(retriever, frames["validation"]["question"].drop_duplicates().tolist())
        test, right = _scored_first_notes(retriever, frames["test"])
        others = {name: first_note_scores(retriever, questions) for name, questions in off_topic.items()}
        for keep in keeps:
            choice = conformal_threshold(validation, keep)
            threshold = -np.inf if choice.threshold is None else choice.threshold
            row: dict[str, object] = {
                "grounding": grounding,
                "keep": keep,
                "validation_questions": len(validation),
                "threshold": choice.threshold if choice.threshold is not None else "none",
                "test_answered": float(np.mean(test >= threshold)),
                **_what_declining_costs(right, test >= threshold),
            }
            for name, scores in others.items():
                row[f"{name}_declined"] = float(np.mean(scores < threshold))
                labels = np.r_[np.ones(len(test)), np.zeros(len(scores))]
                row[f"{name}_auroc"] = float(roc_auc_score(labels, np.r_[_finite(test), _finite(scores)]))
            rows.append(row)
    return rows


def _scored_first_notes(retriever: object, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`(scores, right)` per distinct question of `frame`: its first note's score, and whether that note is one of its answers."""
    references = frame.groupby("question", sort=False)["answer"].apply(set)
    questions = references.index.tolist()
    notes, scores = first_notes(retriever, questions)
    right = np.array([note in references[q] for q, note in zip(questions, notes, strict=True)])
    return scores, right


def _what_declining_costs(right: np.ndarray, answered: np.ndarray) -> dict[str, float]:
    """The in-domain side of declining: recall@1 before and among the answered, and which first notes it drops.

    `right_declined` is the share of right first notes that the threshold
    declines (what declining costs), `wrong_declined` the share of wrong ones
    (what it spares the user). A share without any such note is left out.
    """
    costs = {"test_recall_at_1": float(np.mean(right))}
    if answered.any():
        costs["answered_recall_at_1"] = float(np.mean(right[answered]))
    if right.any():  # a TF-IDF note is a training answer: never a held-out question's
        costs["right_declined"] = float(np.mean(~answered[right]))
    if (~right).any():
        costs["wrong_declined"] = float(np.mean(~answered[~right]))
    return costs


def _finite(scores: np.ndarray) -> np.ndarray:
    """-inf (no note) as a score below every real one, which AUROC needs as a number."""
    return np.where(np.isfinite(scores), scores, -2.0)


def _row_line(row: dict[str, object], off_topic: dict[str, list[str]]) -> str:
    declined = ", ".join(f"{name} declined {row[f'{name}_declined']:.3f}" for name in off_topic)
    return f"{row['grounding']} keep {row['keep']}: test answered {row['test_answered']:.3f}, {declined}"


def _report(
    rows: list[dict[str, object]], off_topic: dict[str, list[str]], keeps: list[float], runs: list[Path]
) -> str:
    names = list(off_topic)
    keys = ["test_answered", *(f"{n}_declined" for n in names)]
    header = (
        "| grounding | keep | in-domain test answered | "
        + " | ".join(f"{n} declined ({len(off_topic[n])} questions)" for n in names)
        + " | "
        + " | ".join(f"AUROC vs {n}" for n in names)
        + " |"
    )
    lines = [
        f"{len(runs)} splits ({', '.join(r.parent.name for r in runs)}); mean ± std over them; "
        f"the threshold set on each split's {_validation_counts(rows)} validation questions.",
        "",
        header,
        "|" + "---|" * 2 + "---:|" * (1 + 2 * len(names)),
    ]
    for grounding in GROUNDINGS:
        for keep in keeps:
            chosen = [r for r in rows if r["grounding"] == grounding and r["keep"] == keep]
            cells = mean_std_cells(chosen, [*keys, *(f"{n}_auroc" for n in names)])
            lines.append(
                f"| {grounding} | {keep} | "
                + " | ".join(cells[k] for k in keys)
                + " | "
                + " | ".join(cells[f"{n}_auroc"] for n in names)
                + " |"
            )
    lines += [
        "",
        "In-domain test questions: recall@1 of the first note over all of them and over the answered "
        "ones; the share of right and of wrong first notes that are declined.",
        "",
        "| grounding | keep | recall@1 | recall@1 of the answered | right ones declined | wrong ones declined |",
        "|---|---|---:|---:|---:|---:|",
    ]
    costs = ["test_recall_at_1", "answered_recall_at_1", "right_declined", "wrong_declined"]
    for grounding in GROUNDINGS:
        for keep in keeps:
            cells = mean_std_cells(
                [r for r in rows if r["grounding"] == grounding and r["keep"] == keep], costs
            )
            lines.append(f"| {grounding} | {keep} | " + " | ".join(cells.get(k, "") for k in costs) + " |")
    return "\n".join(lines)


def _validation_counts(rows: list[dict[str, object]]) -> str:
    counts = sorted({int(r["validation_questions"]) for r in rows})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


if __name__ == "__main__":
    raise SystemExit(run_script(main))
