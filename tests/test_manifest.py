import json
from pathlib import Path

import qa_assistant
from qa_assistant.manifest import build_manifest, package_versions, write_json


def test_manifest_records_versions_and_fields(tmp_path: Path) -> None:
    manifest = build_manifest(seed=3)
    assert manifest["seed"] == 3
    assert manifest["created"].endswith("+00:00")
    versions = package_versions()
    assert versions["tensorflow"]
    assert versions["keras"]
    assert versions["python"]
    path = tmp_path / "m.json"
    write_json(path, manifest)
    assert json.loads(path.read_text())["seed"] == 3
    assert not list(tmp_path.glob(".*tmp"))


def test_public_api_is_lazy_and_complete() -> None:
    for name in qa_assistant.__all__:
        assert getattr(qa_assistant, name) is not None
