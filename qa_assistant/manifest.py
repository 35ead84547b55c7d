"""Run manifests: what produced a run or an export, so it can be reproduced."""

from __future__ import annotations

import datetime
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from qa_assistant.atomic import write_text

_PACKAGES = ("qa-assistant", "tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "pandas")


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that decide a run's numbers."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        import tensorflow as tf

        build = tf.sysconfig.get_build_info()
        versions["cuda"] = build.get("cuda_version")
        versions["cudnn"] = build.get("cudnn_version")
    except Exception:  # build info is optional metadata; never fail a run over it
        pass
    return versions


def git_commit(directory: Path | None = None) -> str | None:
    """The commit of the git checkout holding `directory` (default: this package), if any."""
    where = directory or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def build_manifest(**fields: Any) -> dict[str, Any]:
    """A manifest dict: timestamp, versions, git commit, plus the given fields."""
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git_commit": git_commit(),
        **fields,
    }


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically (temporary file + rename), so readers never see half a file."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=_default) + "\n")


def _default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
