"""`ask --json` prints strict JSON: output values are decoded and non-finite scores become null."""

from __future__ import annotations

import json

import numpy as np

from qa_assistant.serving.assistant import Answer, _value


def test_empty_grounding_places_print_as_null_not_infinity():
    scores = np.array([0.75, -np.inf], dtype=np.float32)
    notes = np.array([b"the office opens at 9", b""], dtype=object)
    answer = Answer(
        "q", "a", 0.1, extra={"grounding_answers": _value(notes), "grounding_scores": _value(scores)}
    )
    text = json.dumps(answer.as_dict(), allow_nan=False)  # raises on -Infinity
    assert json.loads(text)["grounding_scores"] == [0.75, None]
    assert json.loads(text)["grounding_answers"] == ["the office opens at 9", ""]


def test_values_keep_their_shape_and_types():
    assert _value(np.array([[1.0, np.nan], [np.inf, 2.0]])) == [[1.0, None], [None, 2.0]]
    assert _value(np.int32(7)) == 7
    assert _value(np.float32(-np.inf)) is None
    assert _value(b"caf\xc3\xa9") == "café"


def test_a_quoted_reply_says_so_in_json_and_with_top_k(capsys):
    from qa_assistant.cli.commands import _print_answer

    answer = Answer("q", "The office opens at 9.", -3.5, extra={"quoted": _value(np.bool_(True))})
    assert json.loads(json.dumps(answer.as_dict()))["quoted"] is True
    _print_answer(answer, top_k=1)
    assert "quoted: the retriever's first note" in capsys.readouterr().out
    _print_answer(answer, top_k=None)  # the plain reply stays one line
    assert capsys.readouterr().out == "The office opens at 9.\n"


def test_an_answer_cut_at_the_length_limit_says_so_on_stderr(capsys):
    from qa_assistant.cli.commands import _print_answer

    cut = Answer(
        "q", "we deliver on", -2.0, extra={"length": _value(np.int32(3)), "finished": _value(np.bool_(False))}
    )
    assert json.loads(json.dumps(cut.as_dict()))["finished"] is False
    _print_answer(cut, top_k=None)
    printed = capsys.readouterr()
    assert printed.out == "we deliver on\n"  # stdout stays the answer alone
    assert "unfinished: cut at 3 tokens" in printed.err
    whole = Answer("q", "We deliver daily.", -1.0, extra={"length": 5, "finished": True})
    _print_answer(whole, top_k=1)
    assert capsys.readouterr().err == ""


def test_a_declined_request_says_so_in_json_and_with_top_k(capsys):
    from qa_assistant.cli.commands import _print_answer

    extra = {"declined": _value(np.bool_(True)), "answered": _value(np.bool_(False))}
    answer = Answer(
        "who wrote Hamlet?", "I don't know.", -4.0, alternatives=[("I don't know.", -4.0)], extra=extra
    )
    assert json.loads(json.dumps(answer.as_dict()))["declined"] is True
    _print_answer(answer, top_k=1)
    printed = capsys.readouterr().out
    assert "declined: the retriever's first note scored below lm.decline_below" in printed
    assert "fell back" not in printed  # a retrieval export's line, not a language model's
    _print_answer(answer, top_k=None)
    assert capsys.readouterr().out == "I don't know.\n"
    answered = Answer("q", "We open at 9.", -1.0, extra={"declined": False, "quoted": False})
    _print_answer(answered, top_k=1)
    assert "declined" not in capsys.readouterr().out


def test_a_retrieval_fallback_says_why_with_top_k(capsys):
    from qa_assistant.cli.commands import _print_answer

    ranked = [("Budget a 15-20 % margin.", 0.215), ("Ask for references.", 0.181)]
    extra = {"matched_question": "", "matched_question_score": 0.0}
    fallback = Answer("who wrote Hamlet?", "I don't know.", 0.215, alternatives=ranked, extra=extra)
    _print_answer(fallback, top_k=2)
    assert (
        "fell back: the best answer scored 0.215, below the export's fallback threshold"
        in capsys.readouterr().out
    )
    # An answered request: its best-ranked answer, with or without a known question (an indexed answer has none).
    for matched in ("how much over the quote?", ""):
        answered = Answer(
            "q", ranked[0][0], 0.215, alternatives=ranked, extra={**extra, "matched_question": matched}
        )
        _print_answer(answered, top_k=2)
        assert "fell back" not in capsys.readouterr().out
    _print_answer(fallback, top_k=None)
    assert capsys.readouterr().out == "I don't know.\n"
    # An export with the `answered` output is taken at its word: a fallback text that is also
    # the best answer still says it fell back.
    said = Answer("q", ranked[0][0], 0.215, alternatives=ranked, extra={**extra, "answered": False})
    _print_answer(said, top_k=2)
    assert "fell back" in capsys.readouterr().out
    said.extra["answered"] = True
    _print_answer(said, top_k=2)
    assert "fell back" not in capsys.readouterr().out
