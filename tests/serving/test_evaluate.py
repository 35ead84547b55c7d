"""`serving/evaluate.py`: what `qa-assistant evaluate` checks before a model loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa_assistant.errors import UserError
from qa_assistant.serving import evaluate
from tests.helpers import export_shell


def test_a_bad_data_file_is_reported_before_the_export_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Never loaded: the data are read first.
    export_shell(tmp_path / "saved_models" / "mine" / "1", "task:\n  type: lm\ndata:\n  question_column: q\n")
    (tmp_path / "bad.csv").write_text("query,reply\nx,y\n")

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the export was loaded before its data were checked")

    monkeypatch.setattr(evaluate, "Assistant", no_loading)
    with pytest.raises(
        UserError, match=r"has the columns 'query', 'reply'; expected 'q', 'answer' or 'question', 'answer'"
    ):
        evaluate.evaluate_path(tmp_path / "saved_models" / "mine", str(tmp_path / "bad.csv"))
    with pytest.raises(UserError, match=r"'.*missing\.csv' does not exist"):
        evaluate.evaluate_path(tmp_path / "saved_models" / "mine", str(tmp_path / "missing.csv"))


def test_the_answered_questions_of_an_export_come_from_its_output_or_else_its_threshold(
    tmp_path: Path,
) -> None:
    import json
    from types import SimpleNamespace

    import numpy as np

    from qa_assistant.config import from_dict

    config = from_dict({"task": {"type": "retrieve"}})
    best = SimpleNamespace(predicted=["a", "b", "c"])  # each question's best-ranked answer
    out = {"score": np.array([0.3, 0.6, 0.7], np.float32), "answered": np.array([False, True, True])}
    found = evaluate._answered(tmp_path, config, out, out["score"], ["I don't know.", "b", "c"], best)
    assert found.tolist() == [False, True, True]
    # Exports made before the `answered` output: the threshold they were built with decides...
    del out["answered"]
    (tmp_path / "assets.extra").mkdir()
    (tmp_path / "assets.extra" / "retrieval.json").write_text(json.dumps({"threshold": 0.65}))
    assert evaluate._answered(
        tmp_path, config, out, out["score"], ["I don't know."] * 2 + ["c"], best
    ).tolist() == [
        False,
        False,
        True,
    ]
    # ...and without that file, whether the best-ranked answer was replaced.
    (tmp_path / "assets.extra" / "retrieval.json").unlink()
    assert evaluate._answered(
        tmp_path, config, out, out["score"], ["I don't know.", "b", "c"], best
    ).tolist() == [
        False,
        True,
        True,
    ]
