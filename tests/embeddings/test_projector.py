"""Projector files: config, metadata and checkpoint tensors as TensorBoard reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorboard.plugins import projector

from qa_assistant.embeddings import write_projector
from qa_assistant.embeddings.projector import MAX_VALUES


def read_projector(directory: Path) -> dict[str, tuple[np.ndarray, list[str]]]:
    config = text_format.Parse(
        (directory / "projector_config.pbtxt").read_text(), projector.ProjectorConfig()
    )
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(directory)))
    return {
        entry.tensor_name.split("/")[0]: (
            reader.get_tensor(entry.tensor_name),
            (directory / entry.metadata_path).read_text(encoding="utf-8").split("\n")[:-1],
        )
        for entry in config.embeddings
    }


def test_embeddings_and_labels_round_trip(tmp_path: Path) -> None:
    words = np.arange(12, dtype=np.float32).reshape(4, 3)
    answers = np.ones((2, 5), dtype=np.float32)
    directory = write_projector(
        tmp_path,
        {"words": (words, ["", "[UNK]", "hi", "tab\there"]), "answers": (answers, ["Yes.", "No\nway"])},
    )
    assert directory == tmp_path / "projector"
    found = read_projector(directory)
    np.testing.assert_array_equal(found["words"][0], words)
    assert found["words"][1] == ["(empty)", "[UNK]", "hi", "tab here"]
    assert found["answers"][1] == ["Yes.", "No way"]


def test_oversized_and_mismatched_embeddings(tmp_path: Path) -> None:
    big = np.zeros((MAX_VALUES // 2 + 1, 2), dtype=np.float32)
    assert write_projector(tmp_path, {"big": (big, ["w"] * len(big))}) is None
    with pytest.raises(ValueError, match="has 2 rows but 1 labels"):
        write_projector(tmp_path, {"x": (np.zeros((2, 2)), ["a"])})
