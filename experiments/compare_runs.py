"""Is run B really better than run A? A paired bootstrap test on the same test questions.

Both runs must have been tested on the same questions: train them on the same
data with the same train.seed (and data.fold), or the same --test-data. Every
distinct question is a pair of scores (right or wrong, reciprocal rank, ...);
resampling the distinct questions (never rows: a question asked in several
rows is one sample) gives the distribution of B - A. A 95 % interval
that excludes 0 (p < 0.05) says the difference is unlikely to be luck of
this test set; it says nothing about other data.

With --tfidf RUN instead of two runs, A is TF-IDF + logistic regression
refitted on the classification run's own training split (its `baseline_*`
metrics), answering the same test questions.

Usage:
    python experiments/compare_runs.py RUN_A RUN_B [--samples 10000] [--seed 0] [--json]
    python experiments/compare_runs.py --tfidf RUN [--samples 10000] [--seed 0] [--json]
"""

from __future__ import annotations

import argparse
import json

from qa_assistant.analysis.compare import compare_runs, compare_with_tfidf, comparison_table
from qa_assistant.errors import UserError, run_script


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "runs", nargs="*", metavar="RUN", help="RUN_A RUN_B: the reference run, then the other"
    )
    parser.add_argument(
        "--tfidf", metavar="RUN", default=None, help="compare a classification run with its TF-IDF baseline"
    )
    parser.add_argument("--samples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the resampling")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    if args.samples < 100:
        raise UserError(f"--samples must be at least 100; got {args.samples}")

    if args.tfidf is not None:
        if args.runs:
            raise UserError(f"--tfidf takes one run and no others; got {len(args.runs)} more")
        results = compare_with_tfidf(args.tfidf, samples=args.samples, seed=args.seed)
        run_a, run_b = f"TF-IDF + logistic regression on {args.tfidf}'s training split", args.tfidf
    elif len(args.runs) == 2:
        run_a, run_b = args.runs
        results = compare_runs(run_a, run_b, samples=args.samples, seed=args.seed)
    else:
        raise UserError(
            f"expected two run directories (RUN_A RUN_B) or --tfidf RUN; got {len(args.runs)} runs"
        )
    if args.json:
        print(json.dumps({metric: r.as_dict() for metric, r in results.items()}, indent=2))
        return 0
    n = next(iter(results.values())).n if results else 0
    print(f"A = {run_a}\nB = {run_b}\n{n} test questions, {args.samples} paired resamples:\n")
    print(comparison_table(results))
    return 0


if __name__ == "__main__":
    run_script(main)
