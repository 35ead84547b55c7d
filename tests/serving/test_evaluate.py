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
