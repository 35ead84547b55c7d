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

_PACKAGES = (
    "qa-assistant",
    "tensorflow",
    "keras",
    "keras-hub",
    "tensorflow-text",
    "tensorboard",
    "tensorflow-datasets",
    "scikit-learn",
    "numpy",
    "pandas",
    "chatterbot-corpus",
)


def package_versions() -> dict[str, Any]:
    """Installed versions of the packages that decide a run's numbers, and the GPUs used.

    `cuda` and `cudnn` are the versions TensorFlow was built against, given
    only when a GPU is visible (on a CPU they play no part); `gpus` names the
    visible GPUs.
    """
    versions: dict[str, Any] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    versions.update(cuda=None, cudnn=None, gpus=[])
    try:
        import tensorflow as tf  # deferred: start-up time

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            build = tf.sysconfig.get_build_info()
            versions["cuda"] = build.get("cuda_version")
            versions["cudnn"] = build.get("cudnn_version")
            versions["gpus"] = [
                tf.config.experimental.get_device_details(g).get("device_name", g.name) for g in gpus
            ]
    except Exception:  # device details are optional metadata; never fail a run over them
        pass
    return versions


def git_commit(directory: Path | None = None) -> str | None:
    """The commit of the git checkout holding `directory` (default: this package), if any."""
    out = _git(directory, "rev-parse", "HEAD")
    return out.strip() or None if out is not None else None


def git_dirty(directory: Path | None = None) -> bool | None:
    """Whether tracked files of that checkout differ from its commit (`None` outside git)."""
    out = _git(directory, "status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def _git(directory: Path | None, *args: str) -> str | None:
    where = directory or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def build_manifest(**fields: Any) -> dict[str, Any]:
    """A manifest dict: timestamp, versions, git commit (and whether it had local changes), plus `fields`."""
    return {
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": package_versions(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
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
