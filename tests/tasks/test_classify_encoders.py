"""Classification with the Transformer (WordPiece) and pretrained encoders: train -> export -> reload."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from qa_assistant.serving import export_run
from qa_assistant.training.runner import train_run
from tests.helpers import TOPICS, faq_rows, tiny_config, tiny_preset

RELOAD = (
    "import json, sys, tensorflow as tf, tensorflow_text\n"
    "for path in sys.argv[1:]:\n"
    "    f = tf.saved_model.load(path).signatures['serving_default']\n"
    "    out = f(question=tf.constant(['what is your price?', '']))\n"
    "    print(json.dumps([a.decode() for a in out['answer'].numpy()]))\n"
)


@pytest.mark.large  # a minute or more on 2 cores; CI runs it after the default suite (.ci/run)
def test_transformer_and_pretrained_classifiers_export(tmp_path: Path) -> None:
    data = tmp_path / "faq.csv"
    pd.DataFrame(faq_rows(per_answer=6)).to_csv(data, index=False)
    preset = tiny_preset(tmp_path / "preset")
    variants = {
        "transformer": [
            "encoder.type=transformer",
            "encoder.heads=2",
            "encoder.intermediate_dim=16",
            "encoder.max_positions=8",
            "text.tokenizer=wordpiece",
            "text.max_tokens=60",
        ],
        "pretrained": ["encoder.type=pretrained", f"encoder.preset={preset}", "encoder.freeze=all"],
    }
    versions = []
    for name, overrides in variants.items():
        config = tiny_config("train.epochs=1", "train.jit_compile=false", *overrides, train=data)
        run = train_run(config, tmp_path / name).run_dir
        assert json.loads((run / "preprocessor" / "tokenizer.json").read_text())["kind"] == "wordpiece"
        versions.append(export_run(run, name, tmp_path / "saved_models"))
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, *map(str, versions)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for line in done.stdout.strip().splitlines()[-2:]:
        assert set(json.loads(line)) <= set(TOPICS)
