"""Structure customisation as a sweep: every combination of a grid, compared in one table and in TensorBoard.

Each grid point is an ordinary run (or, with --folds, a k-fold parent) under
--output; the whole directory is one TensorBoard root, so the HParams
dashboard compares the points (qa-assistant tensorboard OUTPUT). Writes
OUTPUT/results.csv (every metric; with folds mean, std and 95 % interval
bounds) and OUTPUT/results.md (the task's headline metrics). The point with the
best mean validation score is chosen (the test split takes no part); with
--folds its test metric is compared with every other point's and the TF-IDF
baseline's on the same folds (corrected resampled paired t-test, Holm-adjusted);
OUTPUT/selection.json holds the choice.

Usage:
    python experiments/sweep.py --config experiments/configs/article_gru.yaml \\
        --grid encoder.type=gru,lstm,transformer encoder.layers=1,2 encoder.units=64,128 \\
        [--grid-file grid.yaml] [--folds K [--repeats R]] [--set key=value ...] [--output DIR]

A grid file maps keys to lists:  {encoder.type: [gru, lstm], encoder.layers: [1, 2]}.
Rerunning the same command skips finished points and resumes an unfinished one.
"""

from __future__ import annotations

import argparse
import logging
import time

from qa_assistant.analysis.sweep import (
    RESULTS_CSV,
    load_grid,
    parse_grid,
    results_table,
    run_sweep,
    select_point,
    selection_report,
)
from qa_assistant.errors import UserError, run_script


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", action="append", required=True, metavar="YAML", help="base config (repeatable)"
    )
    parser.add_argument("--grid", nargs="+", default=[], metavar="KEY=V1,V2", help="values to sweep")
    parser.add_argument("--grid-file", metavar="YAML", help="the grid as a YAML mapping of key to values")
    parser.add_argument("--folds", type=int, default=0, metavar="K", help="k-fold cross-validation per point")
    parser.add_argument("--repeats", type=int, default=1, metavar="R", help="seeds per point with --folds")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--output", default="runs/sweep", help="the sweep's directory (TensorBoard root)")
    parser.add_argument("--restart", action="store_true", help="retrain points that already finished")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    grid = {**(load_grid(args.grid_file) if args.grid_file else {}), **parse_grid(args.grid)}
    if not grid:
        raise UserError("no grid: give --grid KEY=V1,V2 ... or --grid-file")
    started = time.perf_counter()
    points = run_sweep(
        args.config,
        grid,
        args.output,
        overrides=args.overrides,
        folds=args.folds,
        repeats=args.repeats,
        restart=args.restart,
    )
    what = f"mean ± std over {args.folds} folds x {args.repeats} seeds" if args.folds else "one run each"
    print(f"\n{len(points)} points ({what}), {time.perf_counter() - started:.0f} s:\n")
    print(results_table(points))
    print("\n" + selection_report(select_point(points)))
    print(f"\nall metrics: {args.output}/{RESULTS_CSV}")
    print(f"TensorBoard: qa-assistant tensorboard {args.output}")
    return 0


if __name__ == "__main__":
    run_script(main)
