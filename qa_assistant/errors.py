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
    """Returns a ` (did you mean 'x'?)` hint for a misspelled name, or ''."""
    import difflib

    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def report_errors(call: Callable[[], int]) -> int:
    """Runs `call` and returns its exit status; the one place user errors become exit statuses.

    A `UserError` prints one line (`error: ...`) and gives status 2; Ctrl-C
    prints `interrupted` and gives 130. Anything else is a bug and raises.
    Used by `qa-assistant` and every experiment script (`run_script`).
    """
    try:
        return call()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_script(main: Callable[[], int]) -> NoReturn:
    """Runs an experiment script's `main` and exits with its status, failing like `qa-assistant` does.

    Example:

        if __name__ == "__main__":
            run_script(main)
    """
    sys.exit(report_errors(main))
