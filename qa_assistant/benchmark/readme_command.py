"""The README's main command (train, export, evaluate, ask), read from the README and timed step by step.

The command is taken from the first `bash` block of the README's "Quick
start" section, after its `pip install` (installing is not what is timed),
so the benchmark times exactly what a new user runs. Each `qa-assistant`
step runs as `python -m qa_assistant` in a fresh directory that sees the
repository's `experiments/`, so it writes nothing into the repository.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from qa_assistant.errors import UserError

_QUICK_START = re.compile(r"^## Quick start\s*$(.*?)^## ", re.M | re.S)
_BASH_BLOCK = re.compile(r"```bash\n(.*?)```", re.S)


def readme_steps(readme: str | Path) -> list[list[str]]:
    """The `qa-assistant` steps of the README's main command, as argument lists (without the program).

    Raises:
        UserError: the README has no quick-start command of the expected form.

    Example:

    >>> readme_steps("README.md")[0][:3]  # doctest: +SKIP
    ['train', '--config', 'experiments/configs/article_gru.yaml']
    """
    text = Path(readme).read_text(encoding="utf-8")
    section = _QUICK_START.search(text)
    block = _BASH_BLOCK.search(section[1]) if section else None
    if block is None:
        raise UserError(
            f"'{readme}' has no ```bash block under '## Quick start'; expected the main command there"
        )
    parts = [p.strip() for p in " ".join(block[1].split("\\\n")).strip().splitlines()[0].split("&&")]
    steps = [shlex.split(p)[1:] for p in parts if p.startswith("qa-assistant ")]
    if not steps or steps[0][0] != "train":
        raise UserError(f"the quick-start command in '{readme}' does not run `qa-assistant train` first")
    return steps
