"""Safe loading: model files that would run code are refused before anything is built from them."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from qa_assistant.errors import UserError
from qa_assistant.models.loading import UNSAFE_CLASSES, check_keras_file, load_keras_model
from qa_assistant.tasks.runs import load_run

PACKAGE = Path(__file__).resolve().parents[2] / "qa_assistant"


def booby_trapped(path: Path, marker: Path, *, nested: bool = False) -> Path:
    """A `.keras` file whose `Lambda` layer writes `marker` whenever the model is rebuilt."""
    trap = eval(f"lambda x: (open({str(marker)!r}, 'w').write('code ran'), x)[1]")
    inputs = keras.Input((3,), name="features")
    hidden = keras.layers.Dense(4, name="first")(inputs)
    if nested:
        inner_in = keras.Input((4,))
        inner = keras.Model(inner_in, keras.layers.Lambda(trap, name="sneaky")(inner_in), name="block")
        hidden = inner(hidden)
    else:
        hidden = keras.layers.Lambda(trap, name="sneaky")(hidden)
    keras.Model(inputs, keras.layers.Dense(2, name="last")(hidden)).save(path)
    marker.unlink()  # building the model ran the trap once; only loading may not
    return path


@pytest.mark.parametrize("nested", [False, True])
def test_a_lambda_model_is_refused_and_its_code_never_runs(tmp_path: Path, nested: bool) -> None:
    marker = tmp_path / "pwned"
    model_file = booby_trapped(tmp_path / "model.keras", marker, nested=nested)
    with pytest.raises(UserError) as error:
        load_keras_model(model_file)
    message = str(error.value)
    assert message.startswith(f"model file '{model_file}' contains a Lambda layer ('sneaky')")
    assert "runs Python code stored in the file; refusing to load it" in message
    assert not marker.exists()
    # The file is really dangerous: Keras with safe mode off runs the stored code.
    keras.saving.load_model(model_file, safe_mode=False)
    assert marker.read_text() == "code ran"


def handmade(path: Path, config: object, *, name: str = "config.json") -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(name, json.dumps(config))
        archive.writestr("metadata.json", "{}")
    return path


@pytest.mark.parametrize("class_name", sorted(UNSAFE_CLASSES))
def test_every_code_loading_layer_is_refused_wherever_it_sits(tmp_path: Path, class_name: str) -> None:
    layer = {"class_name": class_name, "config": {"name": "hidden_inside"}, "module": "keras.layers"}
    config = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [{"class_name": "Dense", "config": {"name": "d", "activation": layer}}],
        },
    }
    with pytest.raises(UserError, match=r"contains .*'hidden_inside'.*refusing to load it"):
        check_keras_file(handmade(tmp_path / "m.keras", config))


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("legacy.h5", b"\x89HDF\r\n", "is a legacy HDF5 model; expected a .keras file"),
        ("legacy.hdf5", b"\x89HDF\r\n", "is a legacy HDF5 model"),
        ("model.pkl", b"\x80\x04K.", "is not a .keras model file"),
        ("garbage.keras", b"not a zip", "is not a .keras model file"),
        ("missing.keras", None, "does not exist"),
    ],
)
def test_other_formats_are_refused(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=re.escape(message)):
        load_keras_model(path)


def test_damaged_archives_and_directories_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_keras_model(handmade(tmp_path / "a.keras", {}, name="other.json"))
    (tmp_path / "b.keras").write_bytes(b"PK\x05\x06" + b"\x00" * 18)  # an empty zip
    with pytest.raises(UserError, match=r"has no config\.json"):
        load_keras_model(tmp_path / "b.keras")
    with pytest.raises(UserError, match="is a directory"):
        load_keras_model(tmp_path)
    unknown = {
        "class_name": "NoSuchLayer",
        "config": {"name": "x"},
        "module": "elsewhere",
        "registered_name": "x>y",
    }
    with pytest.raises(UserError, match="could not be loaded safely"):
        load_keras_model(handmade(tmp_path / "c.keras", unknown))


def test_project_models_load_and_predict_the_same(tiny_run: Path, tmp_path: Path) -> None:
    model = load_keras_model(tiny_run / "model.keras")
    ids = np.array([[2, 3, 0, 0], [1, 0, 0, 0]], dtype="int32")
    copy = tmp_path / "copy.keras"
    model.save(copy)
    np.testing.assert_array_equal(
        load_keras_model(copy).predict(ids, verbose=0), model.predict(ids, verbose=0)
    )


def test_load_run_uses_the_safe_loader(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    marker = tmp_path / "pwned"
    booby_trapped(run / "model.keras", marker)
    with pytest.raises(UserError, match=r"contains a Lambda layer \('sneaky'\)"):
        load_run(run)
    assert not marker.exists()


FORBIDDEN = {
    r"\bimport pickle\b|\bpickle\.load|\bdill\b|\bjoblib\b|\bcloudpickle\b": "pickling",
    r"allow_pickle\s*=\s*True": "numpy pickles",
    r"safe_mode\s*=\s*False|enable_unsafe_deserialization": "unsafe Keras loading",
    r"load_model\(": "a Keras loader outside models/loading.py",
}


def test_the_package_never_pickles_and_loads_keras_files_in_one_place() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        for pattern, what in FORBIDDEN.items():
            if what.startswith("a Keras loader") and path == PACKAGE / "models" / "loading.py":
                continue
            assert not re.search(pattern, text), f"{path.relative_to(PACKAGE)}: {what}"
