"""Personalisation learning curve: how much does starting from a base help with N user pairs?

The builtin corpus (`builtin:chatterbot`) has topics. A base model is trained on
every topic but a held-out few; the held-out topics play the user: their
questions, labelled with their topic, are the user's pairs (classification of
the user's own label set, which the base model has never seen: its class head
is rebuilt, its vocabulary extended with the user's new words). A fixed,
stratified quarter of the user's pairs is the test set; N pairs are drawn
(stratified, per seed) from the rest, and each system is trained on them:

  scratch         experiments/configs/personal_gru.yaml, random initialisation
  base            the same GRU, `--init-from` the base run (vocabulary extended)
  pretrained      all-MiniLM-L6-v2 (experiments/configs/classify_pretrained.yaml)
  <system>+aug    the same, with EDA augmentation of the training questions
                  (synonyms from Word2Vec vectors trained on the non-test text,
                  random deletion): 2 extra copies of every question

Writes under --output: results.csv (one row per run), results.md (held-out
accuracy and macro-F1, mean ± std over seeds), personalization.png (learning
curve), hparams/ (TensorBoard HParams runs) and every run directory. Finished
runs are reused, so an interrupted experiment continues where it stopped.

Usage:
    python experiments/personalization.py [--output DIR] [--sizes 25 50 100 200 all]
        [--seeds 0 1 2] [--systems scratch base pretrained ...] [--holdout TOPIC ...]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from qa_assistant.config import Config, load_config
from qa_assistant.data import load_qa_data
from qa_assistant.embeddings import Word2VecConfig, save_vectors, train_word2vec
from qa_assistant.errors import UserError, run_script
from qa_assistant.personalization.sources import config_for_init
from qa_assistant.training.runner import train_run

CONFIGS = Path(__file__).parent / "configs"
SYSTEMS = ("scratch", "base", "pretrained", "scratch+aug", "base+aug", "pretrained+aug")
DEFAULT_SYSTEMS = ("scratch", "base", "pretrained", "base+aug")
HOLDOUT = ("emotion", "ai", "coding", "psychology")
AUGMENT = ["augment.synonym_count=1", "augment.delete_count=1", "augment.synonym_rate=0.2"]
# Fixed epochs without early stopping: a validation carve of a few pairs is too noisy to stop on.
EPOCHS = {"scratch": 12, "base": 12, "pretrained": 5}
log = logging.getLogger("personalization")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="runs/personalization", help="root of everything written")
    parser.add_argument("--sizes", nargs="+", default=["25", "50", "100", "200", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--systems", nargs="+", default=list(DEFAULT_SYSTEMS), choices=SYSTEMS)
    parser.add_argument(
        "--pretrained-sizes",
        nargs="+",
        default=["25", "100"],
        help="sizes at which MiniLM systems run (they cost the most)",
    )
    parser.add_argument("--holdout", nargs="+", default=list(HOLDOUT), help="topics that play the user")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.INFO)
    root = Path(args.output)
    sizes = list(dict.fromkeys([*args.sizes, *args.pretrained_sizes]))
    files = write_data(root / "data", args.holdout, args.seeds, sizes)
    vectors = write_vectors(root / "data", files["pool"])
    base_run = train_run(gru_config([f"data.train={files['base']}"]), root / "base").run_dir
    started, rows = time.perf_counter(), []
    for system in args.systems:
        sizes = args.pretrained_sizes if system.startswith("pretrained") else args.sizes
        for size in sizes:
            for seed in args.seeds:
                config = system_config(system, base_run, files[size, seed], files["test"], seed, vectors)
                name = f"{system}_n{size}_s{seed}"
                metrics = train_run(config, root / "runs" / name).metrics
                rows.append({"system": system, "pairs": size, "seed": seed, **metrics})
                log.info(
                    "%s: accuracy %.3f (%.0f s so far)",
                    name,
                    metrics["accuracy"],
                    time.perf_counter() - started,
                )
                write_hparams(root / "hparams" / name, system, size, seed, metrics)
    results = pd.DataFrame(rows)
    results.to_csv(root / "results.csv", index=False)
    results = with_baseline(results)
    table = markdown_table(results)
    (root / "results.md").write_text(table + "\n", encoding="utf-8")
    plot(results, root / "personalization.png", len(files["pool"]))
    print(table)
    print(f"\nwrote {root / 'results.csv'}, {root / 'results.md'}, {root / 'personalization.png'}")
    return 0


def write_data(folder: Path, holdout: list[str], seeds: list[int], sizes: list[str]) -> dict:
    """Base and user CSVs: the user's test quarter, and N stratified training pairs per seed."""
    frame = load_qa_data(load_config([CONFIGS / "personal_gru.yaml"])).all_frames()
    frame = frame[["question", "answer", "category"]].astype(str)
    unknown = sorted(set(holdout) - set(frame["category"]))
    if unknown:
        raise UserError(
            f"--holdout topics {unknown} are not in the corpus; expected some of "
            f"{sorted(frame['category'].unique())}"
        )
    user = frame[frame["category"].isin(holdout)]
    pool, test = train_test_split(user, test_size=0.25, stratify=user["category"], random_state=42)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict = {"base": folder / "base.csv", "test": folder / "user_test.csv", "pool": pool}
    frame[~frame["category"].isin(holdout)].to_csv(files["base"], index=False)
    test.to_csv(files["test"], index=False)
    for size in sizes:
        if size != "all" and not len(holdout) <= int(size) < len(pool):
            raise UserError(f"--sizes {size}: expected 'all' or {len(holdout)}..{len(pool) - 1} pairs")
        for seed in seeds:
            drawn = (
                pool
                if size == "all"
                else train_test_split(
                    pool, train_size=int(size), stratify=pool["category"], random_state=seed
                )[0]
            )
            files[size, seed] = folder / f"user_{size}_s{seed}.csv"
            drawn.to_csv(files[size, seed], index=False)
    print(
        f"base: {len(frame) - len(user)} pairs; user ({', '.join(holdout)}): "
        f"{len(pool)} training pool, {len(test)} test",
        flush=True,
    )
    return files


def write_vectors(folder: Path, pool: pd.DataFrame) -> Path:
    """Word2Vec on all the text but the user's test pairs: the augmentation's synonyms."""
    path = folder / "word2vec.txt"
    if not path.exists():
        text = pd.concat([pd.read_csv(folder / "base.csv", dtype=str), pool])
        texts = text["question"].tolist() + text["answer"].tolist()
        words, matrix = train_word2vec(texts, Word2VecConfig())  # the CLI defaults
        save_vectors(path, words, matrix)
    return path


def gru_config(overrides: list[str]) -> Config:
    return load_config([CONFIGS / "personal_gru.yaml"], overrides)


def system_config(system: str, base_run: Path, train: Path, test: Path, seed: int, vectors: Path) -> Config:
    """The config of one system on one user sample."""
    kind = system.removesuffix("+aug")
    overrides = [
        f"data.train={train}",
        f"data.test={test}",
        f"train.seed={seed}",
        f"train.epochs={EPOCHS[kind]}",
        "train.early_stopping=0",
        "data.target=category",
    ]
    if system.endswith("+aug"):
        overrides += [*AUGMENT, f"augment.vectors={vectors}", "augment.samples=0"]
    if kind != "pretrained":
        # XLA off: compiling each bucket shape cost more than a dozen short epochs gain.
        overrides.append("train.jit_compile=false")
    if kind == "scratch":
        return gru_config(overrides)
    if kind == "base":
        return config_for_init([], overrides, str(base_run))
    # The lower 4 of MiniLM's 6 layers stay fixed (affordable on CPU); the new class head
    # learns at 10x the encoder's rate after a 1-epoch warm-up.
    overrides += [
        "encoder.freeze=4",
        "text.max_length=24",
        "train.head_learning_rate=0.001",
        "train.warmup_epochs=1",
        "train.schedule=cosine",
    ]
    return load_config([CONFIGS / "classify_pretrained.yaml"], overrides)


def write_hparams(folder: Path, system: str, size: str, seed: int, metrics: dict) -> None:
    """One TensorBoard HParams run: the system, N and seed, with the held-out metrics."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp

    with tf.summary.create_file_writer(str(folder)).as_default():
        hp.hparams({"system": system, "pairs": size, "seed": seed})
        for key in ("accuracy", "f1_macro"):
            tf.summary.scalar(key, metrics[key], step=0)


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=0):.3f}"


def with_baseline(results: pd.DataFrame) -> pd.DataFrame:
    """Adds the TF-IDF + logistic-regression baseline each scratch run fitted on its own split."""
    if "scratch" not in set(results["system"]):
        return results
    baseline = results[results["system"] == "scratch"].copy()
    baseline["system"] = "TF-IDF + LR"
    baseline["accuracy"] = baseline["baseline_accuracy"]
    baseline["f1_macro"] = baseline["baseline_f1_macro"]
    return pd.concat([results, baseline], ignore_index=True)


def markdown_table(results: pd.DataFrame) -> str:
    """Held-out accuracy (macro-F1 in brackets), mean ± std over seeds; a row per system."""
    sizes = sorted(dict.fromkeys(results["pairs"]), key=lambda s: (s == "all", int(s) if s != "all" else 0))
    lines = ["| system | " + " | ".join(f"N = {s}" for s in sizes) + " |", "|---|" + "---:|" * len(sizes)]
    for system, group in results.groupby("system", sort=False):
        cells = []
        for size in sizes:
            runs = group[group["pairs"] == size]
            cells.append(
                f"{_mean_std(runs['accuracy'])} ({runs['f1_macro'].mean():.3f})" if len(runs) else ""
            )
        lines.append(f"| {system} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: pd.DataFrame, path: Path, pool: int) -> None:
    """Accuracy against N (log scale) per system, error bars = std over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4))
    for system, group in results.groupby("system", sort=False):
        sizes = [s for s in dict.fromkeys(group["pairs"]) if s != "all"]
        stats = [group.loc[group["pairs"] == s, "accuracy"] for s in sizes]
        bars = axes.errorbar(
            [int(s) for s in sizes],
            [v.mean() for v in stats],
            yerr=[v.std(ddof=0) for v in stats],
            marker="o",
            capsize=3,
            label=system,
        )
        everything = group.loc[group["pairs"] == "all", "accuracy"]
        if len(everything):  # the reference the target names: everything the user has
            color = bars.lines[0].get_color()
            axes.axhline(everything.mean(), linestyle="--", color=color, label=f"{system}, all {pool} pairs")
    axes.set_xscale("log", base=2)
    ticks = sorted({int(s) for s in results["pairs"] if s != "all"})
    axes.set_xticks(ticks, [str(t) for t in ticks])
    axes.set_xlabel("user training pairs (N)")
    axes.set_ylabel("held-out accuracy")
    axes.set_title("Personalising to held-out chatterbot topics")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    run_script(main)
