"""TF Serving warmup requests: `assets.extra/tf_serving_warmup_requests`.

TF Serving replays this file (a TFRecord of `PredictionLog` protos, at most
1,000 records) when it loads a version, before the version takes traffic, so
the first real request does not pay for graph optimisation and lazy
initialisation. The records are `PredictRequest`s of real questions, one per
batch size that clients are likely to send.

Example:

>>> write_warmup(Path("v/assets.extra/tf_serving_warmup_requests"), "faq", ["hi", "price?"])  # doctest: +SKIP
>>> [r.inputs["question"].shape for r in read_warmup(Path("v/assets.extra/tf_serving_warmup_requests"))]  # doctest: +SKIP
[(1,), (2,)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving reads no more than this


@dataclass
class WarmupRequest:
    """One record of a warmup file."""

    model_name: str
    signature: str
    inputs: dict[str, np.ndarray]


def warmup_batches(questions: list[str], sizes: tuple[int, ...] = (1, 8, 32)) -> list[list[str]]:
    """One batch per size in `sizes` that the questions can fill (at least one batch).

    >>> warmup_batches(["a", "b", "c"], sizes=(1, 2, 8))
    [['a'], ['a', 'b']]
    """
    batches = [questions[:size] for size in sizes if size <= len(questions)]
    return batches or [questions[:1] or [""]]


def write_warmup(
    path: Path,
    model_name: str,
    batches: list[list[str]],
    *,
    signature: str = "serving_default",
    input_name: str = "question",
) -> int:
    """Writes one `PredictionLog` record per batch; returns the number of records.

    Args:
        path: the file to write (normally `VERSION/assets.extra/tf_serving_warmup_requests`).
        model_name: the name TF Serving serves the model under.
        batches: the questions of each request.
        signature: signature each request calls.
        input_name: the signature's string input.
    """
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # deferred: start-up time

    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for questions in batches[:MAX_RECORDS]:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
            )
            request.inputs[input_name].CopyFrom(tf.make_tensor_proto(questions, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return min(len(batches), MAX_RECORDS)


def read_warmup(path: Path) -> list[WarmupRequest]:
    """Every request in a warmup file, inputs as NumPy arrays by input name."""
    requests = []
    for log in _prediction_logs(path):
        request = log.predict_log.request
        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        requests.append(WarmupRequest(request.model_spec.name, request.model_spec.signature_name, inputs))
    return requests


def rename_warmup(path: Path, model_name: str) -> None:
    """Rewrites a warmup file's requests to name `model_name` (a copy served under another name)."""
    records = _prediction_logs(path)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in records:
            log.predict_log.request.model_spec.name = model_name
            writer.write(log.SerializeToString())


def _prediction_logs(path: Path) -> list:
    """Every record of a warmup file as a `PredictionLog` proto."""
    from tensorflow_serving.apis import prediction_log_pb2  # deferred: start-up time

    return [
        prediction_log_pb2.PredictionLog.FromString(record)
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
    ]
