"""The shipped generation configs, only their sizes shrunk: answers never loop and are never empty.

In a file of its own so that pytest-xdist (`--dist loadfile`) can run it beside
`test_generate.py`, whose module-scoped CLI training is the suite's longest setup.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.config import load_config
from qa_assistant.tasks.runs import load_run
from qa_assistant.training.runner import train_run
from tests.helpers import faq_rows

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"


# Sizes only: everything else (decoding guards, monitor, early stopping, learning rate) as shipped.
SHRUNK = {
    "generate_gru_attention.yaml": [],
    "generate_transformer.yaml": [
        "encoder.heads=2",
        "encoder.intermediate_dim=16",
        "decoder.heads=2",
        "decoder.intermediate_dim=16",
    ],
}


def longest_run(text: str) -> int:
    """The most times one word follows itself in a row."""
    words, longest, current = text.split(), 0, 0
    for i, word in enumerate(words):
        current = current + 1 if i and word == words[i - 1] else 1
        longest = max(longest, current)
    return longest


# `large` (45-70 s each on 2 cores), run by CI after the default suite (.ci/run).
@pytest.mark.large
@pytest.mark.parametrize("name", ["generate_gru_attention.yaml", "generate_transformer.yaml"])
def test_shipped_generation_configs_do_not_loop(name: str, tmp_path: Path) -> None:
    """Every answer of a (shrunk) shipped config is non-empty and repeats no word more than 3 times in a row.

    A few epochs of a tiny model is the undertrained model that loops
    ("to to to to ...") without the configured decoding guards.
    """
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=6)).to_csv(data, index=False)
    sizes = ["text.max_length=8", "embedding.dim=8", "encoder.units=8", "decoder.units=8"]
    sizes += ["decoder.max_length=8", "train.epochs=3", "train.batch_size=8", *SHRUNK[name]]
    config = load_config([CONFIGS / name], [*sizes, f"data.train={data}"])
    run = train_run(config, tmp_path / "run").run_dir
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # Early stopping watched the decoded validation answers, which TensorBoard logged every epoch.
    assert config.train.monitor == "val_rouge_l"
    events = EventAccumulator(str(run / "logs" / "validation"), size_guidance={"tensors": 0})
    events.Reload()
    assert (
        len(events.Tensors("epoch_rouge_l")) == json.loads((run / "metrics.json").read_text())["epochs_run"]
    )
    _, task, model = load_run(run)
    generator = task.generator(model)
    questions = tf.constant([row["question"] for row in faq_rows(per_answer=6)] + ["hello", ""])
    answers = [generator.answer(questions)["top_k_answers"]]
    for strategy in ("beam", "sample"):
        out = generator.generate(questions, strategy, -1, -1, -1.0, -1.0, -1, -1, -1.0, -1, -1.0, -1)
        answers.append(out["top_k_answers"])
    texts = [a.decode() for batch in answers for a in batch.numpy().reshape(-1)]
    assert all(text.strip() for text in texts)
    assert max(longest_run(text) for text in texts) <= 3, [t for t in texts if longest_run(t) > 3]
