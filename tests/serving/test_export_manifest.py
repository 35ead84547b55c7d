"""Every export carries the run's manifest in `assets.extra/`: enough to reproduce the model."""

import hashlib
import json
from pathlib import Path

import pandas as pd
import yaml

from qa_assistant.config import load_config


def test_export_manifest_reads_back_from_assets_extra(tiny_run: Path, tiny_export: Path) -> None:
    extra = tiny_export / "assets.extra"
    manifest = json.loads((extra / "manifest.json").read_text(encoding="utf-8"))
    run = manifest["run"]
    config = load_config([tiny_run / "config.yaml"])

    # The resolved config and seed, identical to the run's and to the copy beside it.
    assert run["config"] == config.to_dict() == yaml.safe_load((extra / "config.yaml").read_text())
    assert run["seed"] == config.train.seed

    # Package versions of the training and of the export; CUDA/cuDNN/GPUs recorded (none on a CPU).
    for versions in (run["versions"], manifest["versions"]):
        for package in ("python", "tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy"):
            assert versions[package], package
        assert {"cuda", "cudnn", "gpus"} <= set(versions)
        if not versions["gpus"]:
            assert versions["cuda"] is None

    # Each data file with the hash of its bytes, and row counts through cleaning.
    data_file = Path(config.data.train)
    (source,) = run["sources"]
    assert source["source"] == str(data_file)
    assert source["sha256"] == hashlib.sha256(data_file.read_bytes()).hexdigest()
    counts = run["cleaning"][str(data_file)]
    assert counts["rows_read"] == len(pd.read_csv(data_file)) == source["rows"]
    assert counts["rows_kept"] == counts["rows_read"] - counts["dropped_empty"] - counts["dropped_duplicates"]
    split = run["split"]
    assert split["train"] + split["validation"] + split["test"] == counts["rows_kept"]

    # The git commit, when the package runs from a checkout (it does in this repository).
    assert "git_commit" in run
    assert "git_dirty" in run
    if (Path(__file__).resolve().parents[2] / ".git").exists():
        assert len(run["git_commit"]) == 40
    assert manifest["name"] == "faq"
    assert Path(manifest["run_dir"]) == tiny_run.resolve()


def test_the_current_export_of_a_run_is_found_and_a_changed_run_is_not(
    tiny_run: Path, tiny_export: Path, tmp_path: Path
) -> None:
    import shutil

    from qa_assistant.serving.export import current_export

    saved_models = tiny_export.parent.parent
    assert current_export(tiny_run, "faq", saved_models) == tiny_export
    assert current_export(tiny_run, "other", saved_models) is None  # no such model
    # The same run copied elsewhere, or retrained (a new run manifest), is not what was exported.
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    assert current_export(copy, "faq", saved_models) is None
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    shutil.copytree(tiny_export.parent, tmp_path / "saved_models" / "faq")
    exported = tmp_path / "saved_models" / "faq" / tiny_export.name / "assets.extra" / "manifest.json"
    moved = {**json.loads(exported.read_text(encoding="utf-8")), "run_dir": str(copy.resolve())}
    exported.write_text(json.dumps(moved))
    assert current_export(copy, "faq", tmp_path / "saved_models") is not None
    (copy / "manifest.json").write_text(json.dumps({**manifest, "created": "later"}))
    assert current_export(copy, "faq", tmp_path / "saved_models") is None
