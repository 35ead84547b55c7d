"""`qa-assistant`: the command line. One `_add_<command>` builds each subcommand's arguments
(`cli/arguments.py`); its handler (`cli/commands.py`) turns them into library calls and prints
what they return. This module runs a command: logging, the pre-check, then the handler.

User errors print one line (`error: ...`) and exit with status 2
(`errors.report_errors`); nothing else prints a traceback unless it is a bug.
Each handler imports the library modules it needs inside its body: start-up
time, since `qa-assistant ask` must not load the tasks, keras-hub or the training code.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from qa_assistant.cli.arguments import build_parser
from qa_assistant.cli.commands import parse_duration
from qa_assistant.errors import report_errors

__all__ = ["build_parser", "main", "parse_duration"]

log = logging.getLogger("qa_assistant")


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:  # shown with the subcommand's usage, not the top-level one
        args.command_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    _setup_logging(args.verbose)

    def run() -> int:
        if getattr(args, "precheck", None) is not None:
            args.precheck(args)  # a user error in seconds, before TensorFlow loads
        with _quiet_native_logs():
            # Loading prints C++ start-up chatter. The runtime itself starts later:
            # a multi-worker strategy must be created before it does.
            import tensorflow  # noqa: F401
        return args.handler(args)

    return report_errors(run)


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            return f"{record.levelname.lower()}: {message}"
        return message


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    log.propagate = False
    for noisy in ("absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ notices; Python errors still raise


@contextlib.contextmanager
def _quiet_native_logs() -> Iterator[None]:
    """Hides the C++ start-up chatter (oneDNN, CUDA probing) printed when TensorFlow loads.

    Set `QA_ASSISTANT_TF_LOGS=1` to see it.
    """
    if os.environ.get("QA_ASSISTANT_TF_LOGS") or not _has_fileno(sys.stderr):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _has_fileno(stream: object) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True
