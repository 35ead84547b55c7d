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

from qa_assistant.config import TextConfig
from qa_assistant.tasks import get_task
from tests.helpers import faq_rows, tiny_config

TOKENIZERS = next(f for f in dataclasses.fields(TextConfig) if f.name == "tokenizer").metadata["choices"]
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


def assert_right_padded_without_empty_rows(ids: np.ndarray) -> None:
    real = ids != 0
    assert real[:, 0].all(), f"a row starts with padding (empty or left-padded): {ids[~real[:, 0]]}"
    # Right-padded: once a row has padding, it has nothing else.
    assert not (real[:, 1:] & ~real[:, :-1]).any(), ids


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_tokenizer_pads_on_the_right_and_never_leaves_a_row_empty(tokenizer: str) -> None:
    task = get_task(tiny_config(f"text.tokenizer={tokenizer}"))
    rows = faq_rows()
    tok = task.build_tokenizer([r["question"] for r in rows])
    assert_right_padded_without_empty_rows(tok(tf.constant(HOSTILE)).numpy())


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_training_batches_are_right_padded_without_empty_rows(tokenizer: str) -> None:
    task = get_task(tiny_config(f"text.tokenizer={tokenizer}", "train.batch_size=4"))
    frame = pd.DataFrame(faq_rows())
    task.tokenizer = task.build_tokenizer(frame["question"].tolist())
    task.labels = sorted(frame["answer"].unique())
    hostile = pd.DataFrame({"question": HOSTILE, "answer": task.labels[0]})
    batches = list(task.dataset(pd.concat([frame, hostile]), training=True))
    assert sum(len(ids) for ids, _ in batches) == len(frame) + len(HOSTILE)
    for ids, _ in batches:
        assert_right_padded_without_empty_rows(ids.numpy())
