"""The run's TensorBoard summaries: hyper-parameters, the best epoch, confusion matrices."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from qa_assistant.analysis.board import logdir_for
from qa_assistant.config import load_config
from qa_assistant.errors import UserError
from qa_assistant.training.confusion import OTHER, confusion_counts, confusion_image
from qa_assistant.training.tensorboard import BestMetrics, hparams_of, session_group


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    found: dict[str, list[tuple[int, float]]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.ndim == 0 and array.dtype.kind == "f":
                    found.setdefault(value.tag, []).append((event.step, float(array)))
    return found


def test_hparams_are_the_config_and_repeats_share_a_session_group() -> None:
    config = load_config([], ["encoder.type=lstm", "data.folds=3", "data.fold=1"])
    hparams = hparams_of(config)
    assert hparams["encoder.type"] == "lstm"
    assert hparams["data.test"] == "none"
    assert not any(key.startswith(("export.", "tensorboard.")) for key in hparams)
    assert all(isinstance(v, bool | int | float | str) for v in hparams.values())
    other_fold = hparams_of(
        load_config([], ["encoder.type=lstm", "data.folds=3", "data.fold=2", "train.seed=7"])
    )
    other_model = hparams_of(load_config([], ["encoder.type=gru", "data.folds=3", "data.fold=1"]))
    assert session_group(hparams) == session_group(other_fold)
    assert session_group(hparams) != session_group(other_model)


def drive(callback: BestMetrics, epochs: list[dict[str, float]], start: int = 0) -> None:
    for epoch, logs in enumerate(epochs, start=start):
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(logs))
    callback.on_train_end()


def test_best_metrics_follow_the_monitor_keep_the_earlier_of_full_ties_and_survive_a_restart(
    tmp_path: Path,
) -> None:
    epochs = [
        {"loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.2, "learning_rate": 0.1},
        {"loss": 0.8, "val_loss": 0.7, "val_accuracy": 0.4, "learning_rate": 0.1},
        {"loss": 0.6, "val_loss": 0.8, "val_accuracy": 0.6, "learning_rate": 0.1},
        {
            "loss": 0.5,
            "val_loss": 0.7,
            "val_accuracy": 0.5,
            "learning_rate": 0.1,
        },  # a full tie (the monitor is the loss): the earlier epoch stays the best
        {"loss": 0.4, "val_loss": 0.75, "val_accuracy": 0.9, "learning_rate": 0.1},
    ]
    first = BestMetrics(tmp_path, {"encoder.type": "gru"}, "val_loss")
    drive(first, epochs[:2])
    state, arrays = first.resume_state()
    resumed = BestMetrics(tmp_path, {"encoder.type": "gru"}, "val_loss")
    resumed.restore_resume_state(state, arrays)
    drive(resumed, epochs[2:], start=2)

    logged = scalars(tmp_path)
    for tag in ("best/val_loss", "best/val_accuracy", "best/epoch"):
        assert [step for step, _ in logged[tag]] == [0, 1, 2, 3, 4]
    assert [v for _, v in logged["best/val_loss"]] == pytest.approx([0.9, 0.7, 0.7, 0.7, 0.7])
    assert [v for _, v in logged["best/val_accuracy"]] == pytest.approx([0.2, 0.4, 0.4, 0.4, 0.4])
    assert [v for _, v in logged["best/epoch"]] == [1, 2, 2, 2, 2]
    assert "best/loss" not in logged  # the best epoch's metrics of the monitored split only
    assert "best/learning_rate" not in logged

    accuracy = BestMetrics(tmp_path / "acc", {}, "val_accuracy")
    drive(accuracy, epochs)
    assert scalars(tmp_path / "acc")["best/val_accuracy"][-1] == (4, pytest.approx(0.9))


def test_the_session_starts_once_even_across_a_restart(tmp_path: Path) -> None:
    first = BestMetrics(tmp_path, {"encoder.type": "gru"}, "loss")
    drive(first, [{"loss": 1.0}])
    resumed = BestMetrics(tmp_path, {"encoder.type": "gru"}, "loss")
    resumed.restore_resume_state(*first.resume_state())
    drive(resumed, [{"loss": 0.5}], start=1)
    starts = [
        value.tag
        for path in tmp_path.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
        if value.tag == "_hparams_/session_start_info"
    ]
    assert len(starts) == 1


def test_confusion_counts_keep_the_frequent_classes_and_pool_the_rest() -> None:
    references = ["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"]
    predicted = ["a"] * 4 + ["d"] + ["b", "b", "a"] + ["c", "z"] + ["a"]
    labels, counts = confusion_counts(references, predicted, max_classes=3)
    assert labels == ["a", "b", "c", OTHER]
    assert counts.tolist() == [[4, 0, 0, 1], [1, 2, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0]]
    assert counts.sum() == len(references)
    image = confusion_image(labels, counts, "test")
    assert image.dtype == np.uint8
    assert image.ndim == 3
    assert image.shape[2] == 4
    assert image.shape[0] > 100


def test_logdir_is_the_run_directory_not_its_logs(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "logs" / "train").mkdir(parents=True)
    (run / "config.yaml").write_text("{}\n")
    with pytest.raises(UserError, match="holds no TensorBoard event files"):
        logdir_for(run)
    (run / "logs" / "train" / "events.out.tfevents.1.host").write_bytes(b"")
    assert logdir_for(run) == run
    assert logdir_for(run / "logs") == run  # HParams needs its sessions below the root
    assert logdir_for(tmp_path) == tmp_path
    with pytest.raises(UserError, match="is not a directory"):
        logdir_for(tmp_path / "missing")


def test_a_confusion_image_of_labels_the_font_lacks_draws_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = confusion_image(
            ["月曜日に開いています。", "Open\non Sundays."], np.array([[1, 0], [0, 1]]), "test"
        )
    assert image.shape[2] == 4
