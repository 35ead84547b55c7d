"""`Assistant` on SavedModels made here: what it sends, what it keeps, what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import tensorflow as tf

from qa_assistant.errors import UserError
from qa_assistant.serving.assistant import Assistant


def _save(path: Path, input_name: str = "question") -> Path:
    """A stand-in export: its score is the byte length of the request as received, its
    second alternative an empty place (-inf), as a quoting language model leaves one."""

    class Stub(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, question):
            rows = tf.shape(question)[0]
            length = tf.cast(tf.strings.length(question), tf.float32)
            return {
                "answer": tf.fill([rows], "ok"),
                "score": length,
                "top_k_answers": tf.stack([tf.fill([rows], "ok"), tf.fill([rows], "")], axis=1),
                "top_k_scores": tf.stack([length, tf.fill([rows], float("-inf"))], axis=1),
            }

    stub = Stub()
    serve = stub.serve.get_concrete_function()
    if input_name != "question":
        spec = tf.TensorSpec([None], tf.string, name=input_name)
        serve = tf.function(lambda **kw: stub.serve(kw[input_name]), input_signature=None)
        serve = serve.get_concrete_function(**{input_name: spec})
    tf.saved_model.save(stub, str(path / "1"), signatures={"serving_default": serve})
    return path


def test_bytes_that_are_not_utf8_reach_the_model_and_the_echo_is_printable(tmp_path: Path) -> None:
    bot = Assistant(_save(tmp_path / "stub"))
    # A command-line argument with the byte 0xff arrives as the lone surrogate U+DCFF.
    answer = bot.ask("caf\udcff?", top_k=5)
    assert answer.score == 5.0  # c a f 0xff ?: the original bytes, not a refusal
    assert answer.question == "caf\ufffd?"
    answer.question.encode("utf-8")  # printable: no surrogate left
    assert answer.alternatives == [("ok", 5.0)]  # the -inf place is no alternative


def test_a_savedmodel_that_is_not_an_export_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"serves inputs \['text'\].*expected the input 'question'"):
        Assistant(_save(tmp_path / "other", input_name="text"))
    broken = tmp_path / "broken" / "1"
    broken.mkdir(parents=True)
    (broken / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(UserError, match="could not be loaded as a SavedModel") as error:
        Assistant(tmp_path / "broken")
    assert "\n" not in str(error.value)
