"""Personalising a pretrained generative LM: zero-shot, LoRA, grounded, scratch and retrieval, one table.

On one split of one data set (the same held-out questions for every row) it
trains, through `qa-assistant train` in a child process (so the wall time and
the peak resident memory of each training are its own):

* `configs/lm_smollm2_lora.yaml`: SmolLM2-135M-Instruct with LoRA adapters
  (and, with `--full`, the same with every weight trained, `lm.lora_rank=0`);
* `configs/retrieval_pretrained.yaml`: the MiniLM dual encoder whose top
  answers also ground the LM, and the LM config again with that retriever
  as `lm.grounding` (trained on grounded prompts);
* `configs/generate_gru_attention.yaml` and `generate_transformer.yaml`:
  the encoder-decoders trained from scratch (`--no-scratch` leaves them out);

and prints, for the held-out questions (greedy decoding, the configs'
repetition guards): BLEU, ROUGE-L and exact match against all reference
answers of a question (on lower-cased text, as the scratch configs see it),
and teacher-forced perplexity (per token of each model's own tokenizer), for

* the zero-shot LM (prompted, never fine-tuned), without and with grounding;
* the LoRA-tuned LM, trained on plain prompts: without grounding, grounded
  by TF-IDF over the training pairs, and grounded by the MiniLM retriever
  over its answer bank (notes at answer time only);
* the LoRA-tuned LM trained on grounded prompts (`lm.grounding` = the
  MiniLM run: retrieval-augmented fine-tuning), grounded when answering,
  and the same quoting the retriever's top answer where its score reaches
  the threshold `lm.quote_above: auto` chooses on the validation questions
  (`tasks/lm/quoting.py`);
* the scratch generators;
* TF-IDF retrieval (the training answer of the nearest training question)
  and the MiniLM retriever's top answer (its bank: every answer of the data).

Then: where the retriever ranks the right answer 1st / 2nd-5th / lower, the
ROUGE-L of its top answer against the grounded LM's; the adapter's size
against a full copy of the model; generated tokens per second with and
without the key/value cache (the same greedy tokens, side by side).

`--grounded-only` trains and evaluates the grounded rows alone (the
retriever, the LoRA run on grounded prompts, generating and quoting) beside
the retrieval rows.

`--curve` adds the learning curve (`--curve-only`: the curve alone): LoRA
runs on N = 25/50/100/200/all training pairs per seed, tested on the same
held-out questions; the figure
goes to experiments/figures/, each run's TensorBoard HParams to
OUTPUT/curve/ (`tensorboard --logdir OUTPUT/curve`).

Finished runs under --output are reused.

Usage:
    python experiments/personalize_llm.py [--data F] [--output DIR] [--full] [--no-scratch] [--grounded-only]
        [--curve | --curve-only | --footprint-only] [--sizes 25 50 100 200 all] [--seeds 42 43 44] [--all-seeds 42]
        [--set key=value ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from qa_assistant.config import load_config
from qa_assistant.errors import UserError, run_script
from qa_assistant.layout import ADAPTER_FILE, CONFIG_FILE, METRICS_FILE, is_finished, split_file
from qa_assistant.metrics.baselines import tfidf_nearest_answers
from qa_assistant.metrics.generation import evaluate_generation, rouge_l, text_metrics
from qa_assistant.metrics.ranking import format_columns, format_table
from qa_assistant.presets import resolve_preset
from qa_assistant.tasks import get_task
from qa_assistant.tasks.lm.cached import CachedCausalLM, left_pad
from qa_assistant.tasks.lm.generator import LanguageModelGenerator
from qa_assistant.tasks.lm.grounding import DualEncoderRetriever, TfidfRetriever
from qa_assistant.tasks.lm.quoting import calibrate
from qa_assistant.tasks.runs import load_run

CONFIGS = Path(__file__).parent / "configs"
FIGURES = Path(__file__).parent / "figures"
LM = CONFIGS / "lm_smollm2_lora.yaml"
RETRIEVER = CONFIGS / "retrieval_pretrained.yaml"
SCRATCH = {
    "GRU + attention (scratch)": CONFIGS / "generate_gru_attention.yaml",
    "Transformer (scratch)": CONFIGS / "generate_transformer.yaml",
}
# One split for every config: these keys are set alike for all of them.
SPLIT = ("data.test_fraction=0.2", "data.validation_fraction=0.1", "train.seed=42")
KEYS = ("bleu", "rouge_l", "exact_match", "perplexity")
GROUNDED = "SmolLM2 + LoRA trained grounded, grounded (MiniLM top 3)"
SPEED_QUESTIONS = 16  # one batch of held-out questions for the cache comparison
SPEED_TOKENS = 32  # tokens generated per row in it


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="builtin:chatterbot", help="Q/A file or builtin:chatterbot")
    parser.add_argument("--output", default="runs/personalize_llm", help="root of the run directories")
    parser.add_argument("--full", action="store_true", help="also fine-tune every weight (lm.lora_rank=0)")
    parser.add_argument("--no-scratch", action="store_true", help="leave out the scratch generators")
    parser.add_argument(
        "--no-grounded-training",
        action="store_true",
        help="leave out the LoRA run trained on grounded prompts",
    )
    parser.add_argument(
        "--grounded-only",
        action="store_true",
        help="only the retriever and the LoRA run trained on grounded prompts (generating and quoting)",
    )
    parser.add_argument("--curve", action="store_true", help="also draw the learning curve")
    parser.add_argument("--sizes", nargs="+", default=["25", "50", "100", "200", "all"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument(
        "--all-seeds", nargs="+", type=int, default=None, help="seeds of N = all (default --seeds)"
    )
    parser.add_argument(
        "--curve-only", action="store_true", help="the learning curve alone (trains the LoRA run)"
    )
    parser.add_argument(
        "--footprint-only", action="store_true", help="adapter size and cache speed-up of a trained LoRA run"
    )
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")

    root = Path(args.output)
    common = [f"data.train={json.dumps(args.data)}", *SPLIT, *args.overrides]
    if args.footprint_only:
        print(json.dumps(footprint(root / "lora", _split(root / "lora", "test")), indent=2))
        return 0
    if args.curve_only:
        train(root / "lora", LM, common)
        learning_curve(
            root / "curve", root / "lora", common, args.sizes, args.seeds, args.all_seeds or args.seeds
        )
        return 0
    if args.grounded_only:
        trained, tuned = train_grounded(root, common)
    else:
        trained, tuned = train_all(root, common, args.full, args.no_scratch, not args.no_grounded_training)
    lora_dir = root / ("lora_grounded" if args.grounded_only else "lora")
    train_frame, test = (_split(lora_dir, name) for name in ("train", "test"))
    grouped = test.groupby("question", sort=False)["answer"].agg(list)
    for run_dir in (root / "retriever", *tuned.values()):
        held_out = set(_split(run_dir, "test")["question"].str.lower())
        if held_out != set(test["question"].str.lower()):
            raise UserError(f"'{run_dir}' holds out other questions than '{lora_dir}'; expected one split")
    print(f"\n{len(train_frame)} training pairs; {len(grouped)} held-out questions ({len(test)} pairs)\n")
    rows: dict[str, dict[str, float]] = {}
    answers: dict[str, list[str]] = {}
    _, retrieval_task, retrieval_model = load_run(root / "retriever")
    retrievers = {
        "TF-IDF": TfidfRetriever(train_frame["question"].tolist(), train_frame["answer"].tolist()),
        "MiniLM": DualEncoderRetriever(retrieval_task, retrieval_model),
    }
    if not args.grounded_only:
        lm_rows(rows, answers, lora_dir, test, retrievers)
    quoting = {}
    for name, run_dir in tuned.items():
        if name == GROUNDED:
            quoting = grounded_rows(rows, answers, run_dir, test)
            continue
        _, task, model = load_run(run_dir)
        rows[name], answers[name] = _evaluate(task.generator(model), test)
        print(f"[{name}] ROUGE-L {rows[name]['rouge_l']:.3f}", flush=True)
        del task, model
    retrieved = tfidf_nearest_answers(
        train_frame["question"].tolist(), train_frame["answer"].tolist(), grouped.index.tolist()
    )
    rows["TF-IDF retrieval of a training answer"] = _text_metrics(grouped.tolist(), retrieved)
    answers["TF-IDF retrieval"] = retrieved
    top, top_scores, ranks = _retriever_ranks(retrievers["MiniLM"], grouped)
    rows["MiniLM retriever's top answer"] = _text_metrics(grouped.tolist(), top)
    answers["MiniLM retriever"] = top
    if quoting.get("threshold") is not None:
        quoting["test_quoted_share"] = float(np.mean(np.asarray(top_scores) >= quoting["threshold"]))
    speed = {} if args.grounded_only else footprint(lora_dir, test)
    report(root, rows, answers, grouped, ranks, trained, {**speed, "quoting": quoting})
    if args.curve:
        learning_curve(root / "curve", lora_dir, common, args.sizes, args.seeds, args.all_seeds or args.seeds)
    return 0


def train_all(
    root: Path, common: list[str], full: bool, no_scratch: bool, grounded: bool
) -> tuple[dict, dict[str, Path]]:
    """Trains every run (or reuses it): their training facts, and the tuned runs evaluated as they are."""
    trained = {"LoRA": train(root / "lora", LM, common)}
    # Cased, like the LM's data: the same texts, so its answers compare with the references as they are.
    trained["MiniLM retriever"] = train(root / "retriever", RETRIEVER, [*common, "text.lowercase=false"])
    tuned = {}
    if grounded:
        grounding = f"lm.grounding={json.dumps(str((root / 'retriever').resolve()))}"
        trained["LoRA, grounded training"] = train(root / "lora_grounded", LM, [*common, grounding])
        tuned[GROUNDED] = root / "lora_grounded"
    if full:
        trained["full"] = train(root / "full", LM, [*common, "lm.lora_rank=0", "train.learning_rate=5e-5"])
        tuned["SmolLM2 fine-tuned (every weight)"] = root / "full"
    for name, path in {} if no_scratch else SCRATCH.items():
        trained[name] = train(root / path.stem, path, common)
        tuned[name] = root / path.stem
    return trained, tuned


def train_grounded(root: Path, common: list[str]) -> tuple[dict, dict[str, Path]]:
    """`--grounded-only`: the MiniLM retriever and the LoRA run trained on its notes (trained or reused)."""
    trained = {"MiniLM retriever": train(root / "retriever", RETRIEVER, [*common, "text.lowercase=false"])}
    grounding = f"lm.grounding={json.dumps(str((root / 'retriever').resolve()))}"
    trained["LoRA, grounded training"] = train(root / "lora_grounded", LM, [*common, grounding])
    return trained, {GROUNDED: root / "lora_grounded"}


def grounded_rows(
    rows: dict[str, dict[str, float]], answers: dict[str, list[str]], run_dir: Path, test: pd.DataFrame
) -> dict[str, Any]:
    """The LM trained on grounded prompts, generating every answer, then quoting where the retriever is sure.

    The quote threshold is what `lm.quote_above: auto` would choose
    (`quoting.calibrate`, on the run's validation questions); the test
    questions never take part in choosing it. Returns that choice.
    """
    config, task, model = load_run(run_dir)

    def generator(quote_above: float | None) -> LanguageModelGenerator:
        return LanguageModelGenerator(
            model,
            task.prompt,
            config.decoding,
            max_new_tokens=config.decoder.max_length,
            retriever=task.retriever,
            grounding_k=config.lm.grounding_k,
            answer_max_tokens=config.lm.max_length,
            quote_above=quote_above,
        )

    generating = generator(None)
    rows[GROUNDED], answers[GROUNDED] = _evaluate(generating, test)
    print(f"[{GROUNDED}] ROUGE-L {rows[GROUNDED]['rouge_l']:.3f}", flush=True)
    choice = calibrate(generating, _split(run_dir, "validation"))
    print(f"quote threshold chosen on the validation questions: {choice.as_dict()}", flush=True)
    if choice.threshold is not None:
        name = f"{GROUNDED}, quoting the top answer at score >= {choice.threshold:.3f}"
        rows[name], answers[name] = _evaluate(generator(choice.threshold), test)
        print(f"[{name}] ROUGE-L {rows[name]['rouge_l']:.3f}", flush=True)
    return choice.as_dict()


def report(
    root: Path,
    rows: dict[str, dict[str, float]],
    answers: dict[str, list[str]],
    grouped: pd.Series,
    ranks: list[int],
    trained: dict[str, dict[str, float]],
    speed: dict[str, Any],
) -> None:
    """Prints the tables and keeps them in OUTPUT/results.json."""
    by_rank = _by_rank(grouped, ranks, {k: answers[k] for k in answers if "MiniLM" in k})
    print(format_table(rows, KEYS))
    print("\nROUGE-L by the retriever's rank of the right answer:\n")
    print(format_table(by_rank, list(next(iter(by_rank.values())))))
    print("\nTraining:\n")
    print(format_table(trained))
    print("\nFootprint and speed:\n")
    print(json.dumps(speed, indent=2))
    print("\nSample answers:\n")
    shown = {"question": grouped.index.tolist(), "reference": [" / ".join(r) for r in grouped]}
    print(format_columns({**shown, **answers}, 6))
    results = {"rows": rows, "by_rank": by_rank, "training": trained, "footprint": speed}
    (root / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    samples = pd.DataFrame({**shown, **answers})
    samples.to_json(root / "answers.jsonl", orient="records", lines=True, force_ascii=False)
    print(f"\nwrote {root / 'results.json'}, {root / 'answers.jsonl'}")


def train(run_dir: Path, config: Path, overrides: list[str]) -> dict[str, float]:
    """Trains `config` into `run_dir` with `qa-assistant train` in a child process; reuses a finished run.

    Returns the run's `train_seconds` and `epochs_run`, and the child's
    wall time and peak resident memory (`peak_rss_mib`; kept beside the run
    as RUN_DIR.footprint.json, so a reused run keeps its figures; `None`
    for a finished run trained without this script).
    """
    facts_file = run_dir.with_name(run_dir.name + ".footprint.json")
    if not is_finished(run_dir):
        command = [sys.executable, "-m", "qa_assistant", "train", "--config", str(config)]
        command += ["--output", str(run_dir), "--set", *overrides]
        print(f"training {run_dir} ...", flush=True)
        started = time.perf_counter()
        child = subprocess.Popen(command)
        _, status, usage = os.wait4(child.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise UserError(f"training '{run_dir}' failed (exit {os.waitstatus_to_exitcode(status)})")
        facts = {
            "wall_seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mib": round(usage.ru_maxrss / 1024),  # kilobytes on Linux
        }
        facts_file.write_text(json.dumps(facts), encoding="utf-8")
    metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
    unknown = {"wall_seconds": None, "peak_rss_mib": None}  # a run trained by other means
    facts = json.loads(facts_file.read_text(encoding="utf-8")) if facts_file.is_file() else unknown
    return {"train_seconds": metrics["train_seconds"], "epochs_run": metrics["epochs_run"], **facts}


def lm_rows(
    rows: dict[str, dict[str, float]],
    answers: dict[str, list[str]],
    lora_dir: Path,
    test: pd.DataFrame,
    retrievers: dict[str, Any],
) -> None:
    """Zero-shot and LoRA-tuned (trained without notes), each without and with notes at answer time."""
    config, task, model = load_run(lora_dir)
    base_config = load_config([lora_dir / CONFIG_FILE], ["lm.lora_rank=0"])
    base_task = get_task(base_config)
    base_task.restore(lora_dir)
    for label, lm, prompt in (
        ("SmolLM2 zero-shot", base_task.build_model(), base_task.prompt),
        ("SmolLM2 + LoRA", model, task.prompt),
    ):
        for grounding in (None, "TF-IDF", "MiniLM"):
            if label.endswith("zero-shot") and grounding == "TF-IDF":
                continue  # the MiniLM row shows what grounding alone does
            name = label + (f", grounded ({grounding} top {config.lm.grounding_k})" if grounding else "")
            generator = LanguageModelGenerator(
                lm,
                prompt,
                config.decoding,
                max_new_tokens=config.decoder.max_length,
                retriever=retrievers[grounding] if grounding else None,
                grounding_k=config.lm.grounding_k,
                answer_max_tokens=config.lm.max_length,
            )
            rows[name], answers[name] = _evaluate(generator, test)
            print(f"[{name}] ROUGE-L {rows[name]['rouge_l']:.3f}", flush=True)


def _evaluate(generator: Any, test: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    def answer(questions: list[str]) -> dict[str, tf.Tensor]:
        return generator.answer(tf.constant(questions))

    def score(questions: list[str], replies: list[str]) -> dict[str, tf.Tensor]:
        return generator.score(tf.constant(questions), tf.constant(replies))

    metrics, predictions = evaluate_generation(test, answer, score, score_batch_size=16)
    predicted = predictions["predicted"].tolist()
    return {**metrics, **_text_metrics(predictions["references"].tolist(), predicted)}, predicted


def _text_metrics(references: list[list[str]], predicted: list[str]) -> dict[str, float]:
    """BLEU, ROUGE-L and exact match on lower-cased text: the scratch configs lower-case theirs."""
    return text_metrics([[r.lower() for r in refs] for refs in references], [p.lower() for p in predicted])


def _retriever_ranks(
    retriever: DualEncoderRetriever, grouped: pd.Series
) -> tuple[list[str], list[float], list[int]]:
    """The retriever's top answer per question, its score, and the rank (1-based; 0: not in the top 5) of a right one."""
    top, scores, ranks = [], [], []
    questions = grouped.index.tolist()
    for start in range(0, len(questions), 64):
        found, found_scores = retriever.retrieve(tf.constant(questions[start : start + 64]), 5)
        for row, references in zip(found.numpy(), grouped.iloc[start : start + 64], strict=True):
            texts = [a.decode("utf-8") for a in row]
            top.append(texts[0])
            ranks.append(next((i + 1 for i, t in enumerate(texts) if t in set(references)), 0))
        scores += found_scores.numpy()[:, 0].tolist()
    return top, scores, ranks


def _by_rank(
    grouped: pd.Series, ranks: list[int], answers: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    """ROUGE-L of each system on the questions whose right answer the retriever ranks 1st, 2nd-5th, lower."""
    ranks_array = np.asarray(ranks)
    groups = {"1st": ranks_array == 1, "2nd-5th": ranks_array >= 2, "not in top 5": ranks_array == 0}
    references = grouped.tolist()
    table: dict[str, dict[str, float]] = {}
    for name, texts in answers.items():
        table[name] = {
            f"{group} ({int(np.sum(mask))})": rouge_l(
                [references[i] for i in np.flatnonzero(mask)], [texts[i] for i in np.flatnonzero(mask)]
            )
            for group, mask in groups.items()
        }
    return table


def footprint(lora_dir: Path, test: pd.DataFrame) -> dict[str, Any]:
    """Adapter size against the full model, and greedy tokens/s with and without the key/value cache."""
    config, task, model = load_run(lora_dir)
    adapter = (lora_dir / ADAPTER_FILE).stat().st_size
    full = sum(f.stat().st_size for f in Path(resolve_preset(config.lm.preset)).glob("*.safetensors"))
    parameters = model.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    questions = test["question"].unique().tolist()[:SPEED_QUESTIONS]
    ids, mask = left_pad(task.prompt.prompt_ids(tf.constant(questions)))
    decoder = CachedCausalLM(model, task.prompt.last_prompt_id)
    speeds, tokens = {}, {}
    for name, loop in (("with_cache", _cached_greedy), ("without_cache", _uncached_greedy)):
        loop(decoder, ids[:2], mask[:2], 2)  # trace outside the timing
        started = time.perf_counter()
        tokens[name] = loop(decoder, ids, mask, SPEED_TOKENS)
        speeds[name] = tokens[name].size / (time.perf_counter() - started)
    return {
        "adapter_bytes": adapter,
        "full_model_bytes": full,
        "adapter_share_of_model_file": adapter / full,
        "parameters": parameters,
        "trainable_parameters": trainable,
        "tokens_per_second": {k: round(v, 1) for k, v in speeds.items()},
        "cache_speed_up": round(speeds["with_cache"] / speeds["without_cache"], 2),
        "same_tokens": bool(np.array_equal(tokens["with_cache"], tokens["without_cache"])),
        "batch": len(questions),
        "new_tokens_per_row": SPEED_TOKENS,
        "prompt_tokens": int(ids.shape[1]),
    }


def _cached_greedy(decoder: CachedCausalLM, ids: tf.Tensor, mask: tf.Tensor, steps: int) -> np.ndarray:
    """Greedy ids `[rows, steps]`: the prompt cached once, then one token through the model per step."""
    prefix = int(ids.shape[1]) - 1
    step = tf.function(decoder.run, reduce_retracing=True)
    key_mask = tf.concat([tf.cast(mask[:, :prefix], tf.bool), tf.ones([ids.shape[0], steps], tf.bool)], 1)
    _, cache = step(
        ids[:, :prefix], decoder.empty_cache(ids.shape[0], prefix + steps), tf.constant(0), key_mask
    )
    token, out = ids[:, prefix:], []
    for i in range(steps):
        logits, cache = step(token, cache, tf.constant(prefix + i), key_mask)
        token = tf.argmax(logits[:, -1], axis=-1, output_type=tf.int32)[:, None]
        out.append(token)
    return tf.concat(out, axis=1).numpy()


def _uncached_greedy(decoder: CachedCausalLM, ids: tf.Tensor, mask: tf.Tensor, steps: int) -> np.ndarray:
    """The same greedy ids, each step running the whole sequence so far through the model."""
    step = tf.function(decoder.run, reduce_retracing=True)
    sequence, key_mask, out = tf.cast(ids, tf.int32), tf.cast(mask, tf.bool), []
    for _ in range(steps):
        width = sequence.shape[1]
        logits, _ = step(sequence, decoder.empty_cache(sequence.shape[0], width), tf.constant(0), key_mask)
        token = tf.argmax(logits[:, -1], axis=-1, output_type=tf.int32)[:, None]
        out.append(token)
        sequence = tf.concat([sequence, token], axis=1)
        key_mask = tf.concat([key_mask, tf.ones_like(token, tf.bool)], axis=1)
    return tf.concat(out, axis=1).numpy()


def learning_curve(
    folder: Path, lora_dir: Path, common: list[str], sizes: list[str], seeds: list[int], all_seeds: list[int]
) -> None:
    """LoRA runs on N of the main split's training pairs per seed, all tested on its held-out pairs.

    A run on N pairs keeps 10 % of them for validation (the best of the
    epochs by validation loss). N = all with the split's own seed (42) is
    the main LoRA run itself (every training pair, the main validation
    split); other seeds of N = all train again (`--all-seeds`).
    """
    pool, test_file = _split(lora_dir, "train"), split_file(lora_dir, "test")
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    for size in sizes:
        if size != "all" and not 2 <= int(size) <= len(pool):
            raise UserError(f"--sizes {size}: expected 'all' or 2..{len(pool)} pairs")
        for seed in all_seeds if size == "all" else seeds:
            run_dir = folder / f"n{size}_s{seed}"
            if size == "all" and f"train.seed={seed}" in SPLIT:
                run_dir = lora_dir
                facts = train(lora_dir, LM, common)
            else:
                drawn = pool if size == "all" else pool.sample(n=int(size), random_state=seed)
                data = folder / f"train_{size}_s{seed}.jsonl"
                drawn.to_json(data, orient="records", lines=True, force_ascii=False)
                overrides = [
                    *common,
                    f"data.train={json.dumps(str(data))}",
                    f"data.test={json.dumps(str(test_file))}",
                ]
                facts = train(run_dir, LM, [*overrides, f"train.seed={seed}"])
            metrics = json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
            tfidf = metrics["baseline_rouge_l"]  # the TF-IDF answer over the same N pairs
            results.append(
                {
                    "pairs": size,
                    "seed": seed,
                    **{k: metrics[k] for k in KEYS},
                    "tfidf_rouge_l": tfidf,
                    **facts,
                }
            )
            print(f"[N={size} seed {seed}] ROUGE-L {metrics['rouge_l']:.3f}", flush=True)
    frame = pd.DataFrame(results)
    frame.to_csv(folder / "results.csv", index=False)
    columns = ["rouge_l", "tfidf_rouge_l", "bleu", "train_seconds"]
    summary = frame.groupby("pairs", sort=False)[columns].agg(["mean", "std", "count"])
    print("\nLearning curve (mean, std and count over seeds):\n")
    print(summary.round(3).to_markdown())
    _plot(frame, FIGURES / "personalize_llm_curve.png", len(pool))


def _plot(frame: pd.DataFrame, path: Path, pool: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.5, 4))
    numbers = frame["pairs"].map(lambda s: pool if s == "all" else int(s))
    for column, label in (
        ("rouge_l", "SmolLM2 + LoRA"),
        ("tfidf_rouge_l", "TF-IDF answer over the same pairs"),
    ):
        stats = frame.assign(n=numbers).groupby("n")[column].agg(["mean", "std"])
        axes.errorbar(
            stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, label=label
        )
    axes.legend(fontsize=8)
    axes.set_xscale("log", base=2)
    axes.set_xticks(stats.index, [str(n) for n in stats.index])
    axes.set_xlabel("training pairs (N; the largest is every training pair)")
    axes.set_ylabel("held-out ROUGE-L (greedy)")
    axes.set_title("SmolLM2-135M + LoRA: held-out ROUGE-L against training pairs")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    print(f"\nwrote {path}")


def _split(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_json(split_file(run_dir, name), lines=True, dtype=False)


if __name__ == "__main__":
    run_script(main)
