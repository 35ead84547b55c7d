"""The one exception type that means "the user asked for something we cannot do"."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn


class UserError(Exception):
    """A problem with the user's input (file, config, command line), not a bug.

    The CLI prints its message as a single line and exits non-zero without a
    traceback. Messages name what was received and what was expected.
    """


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """Returns a `; did you mean 'x'?` hint for a misspelled name, or ''."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def run_script(main: Callable[[], int]) -> NoReturn:
    """Runs an experiment script's `main` and exits with its status.

    A `UserError` becomes the CLI's one line (`error: ...`) and exit status 2,
    so scripts fail like `qa-assistant` does: no traceback for a user's mistake.

    Example:

        if __name__ == "__main__":
            run_script(main)
    """
    try:
        status = main()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        status = 2
    sys.exit(status)
