"""Every experiment script that BENCHMARKS.md runs still imports against the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).parents[1] / "experiments").glob("*.py"))


def test_the_scripts_are_found() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_an_experiment_script_imports(script: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"experiment_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # a renamed or moved import fails here, not in a user's hands
    assert callable(getattr(module, "main", None)), f"{script.name} has no main()"
