"""`qa-assistant tensorboard`: TensorBoard on this machine only, pointed at the right directory.

A run's event files live in `RUN_DIR/logs`, which is its HParams session
(`logs/train` and `logs/validation` hold Keras' curves). TensorBoard must read
the run directory itself or a directory above it, never `RUN_DIR/logs`: the
HParams dashboard finds a session's metrics in the runs *below* the session,
and a session that is TensorBoard's root directory matches none of them. A
directory of several runs (a sweep, a k-fold parent) is read as it is, and
the dashboard compares its runs. Plain `tensorboard --logdir` works on the
same directories.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from qa_assistant.errors import UserError
from qa_assistant.layout import CONFIG_FILE, LOGS_DIR

HOST = "127.0.0.1"  # never another interface: the logs hold the user's questions and answers
_EVENTS = "events.out.tfevents.*"


def logdir_for(path: str | Path) -> Path:
    """The directory TensorBoard should read for a run directory or a directory of runs.

    Args:
        path: a run directory, its `logs/`, or any directory with runs below it.

    Returns:
        The run directory for its `logs/`, otherwise `path`.

    Raises:
        UserError: `path` does not exist or holds no TensorBoard event files.

    Example:

    >>> logdir_for("runs/article/logs")  # doctest: +SKIP
    PosixPath('runs/article')
    """
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"'{path}' is not a directory; expected a run directory or a directory of runs")
    if path.name == LOGS_DIR and (path.parent / CONFIG_FILE).is_file():
        path = path.parent
    if next(itertools.islice(path.rglob(_EVENTS), 1), None) is None:
        raise UserError(
            f"'{path}' holds no TensorBoard event files; expected a run directory (with logs/) "
            "or a directory with runs below it"
        )
    return path


def serve(path: str | Path, port: int | None = None) -> int:
    """Serves TensorBoard for `logdir_for(path)` on 127.0.0.1 until interrupted.

    Args:
        path: a run directory or a directory of runs.
        port: the port; `None` takes the first free one from 6006, `0`
            any free one. TensorBoard prints the address it serves at.

    Returns:
        TensorBoard's exit status.

    Raises:
        UserError: no logs at `path`, or a port outside 0-65535.
    """
    if port is not None and not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535; got {port}")
    logdir = logdir_for(path)
    from tensorboard import program  # deferred: start-up time

    board = program.TensorBoard()
    # load_fast=false: TensorBoard's own Python reader, no separate data-server process.
    board.configure(logdir=str(logdir), host=HOST, port=port, load_fast="false", reload_interval=5)
    print(f"TensorBoard reads {logdir}", flush=True)
    return board.main()
