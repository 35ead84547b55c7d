"""Crash-safe writes: a reader, or a run restarted after `kill -9`, sees the old file or the new one.

Everything is written under a temporary name in the destination's own
directory (so the final rename never crosses a file system), flushed to disk,
and renamed over the destination; the directory is then flushed too, so the
rename itself survives a power cut. Temporary names start with `.tmp-` and
carry the writer's host and process id, so leftovers of a killed writer can be
recognised and removed (`remove_stale`) without touching a live writer's work.

Example:

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "notes.txt"
>>> write_text(path, "all or nothing")
>>> path.read_text()
'all or nothing'
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"
_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"
_TMP_NAME = re.compile(rf"^{re.escape(TMP_PREFIX)}(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-[0-9a-f]{{8}}-")


def temporary_name(final_name: str) -> str:
    """A hidden, unique name for a file or directory on its way to becoming `final_name`.

    The name ends with `final_name`, so suffix checks (`.keras`,
    `.weights.h5`) still pass on it.
    """
    return f"{TMP_PREFIX}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}-{final_name}"


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Yields a temporary path beside `path`; on success it is flushed and renamed over `path`.

    On an exception the temporary file is removed and `path` keeps its old
    content (or stays absent).

    Example:

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "model.keras"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_bytes(b"zip bytes")
    >>> target.read_bytes()
    b'zip bytes'
    """
    path = Path(path)
    tmp = path.with_name(temporary_name(path.name))
    try:
        yield tmp
        fsync_tree(tmp)
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise
    fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Writes `data` to `path` atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Writes UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode("utf-8"))


def fsync_dir(path: str | Path) -> None:
    """Flushes a directory's entries (new names, renames) to disk."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return  # some platforms cannot open directories; the rename is still atomic
    try:
        with contextlib.suppress(OSError):  # EINVAL on file systems without directory fsync
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: str | Path) -> None:
    """Flushes a file, or every file and directory under a directory, to disk."""
    path = Path(path)
    if path.is_file():
        _fsync_file(path)
        return
    for root, _, files in os.walk(path):
        for name in files:
            _fsync_file(Path(root) / name)
        fsync_dir(root)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def remove(path: str | Path) -> None:
    """Removes a file or directory tree if it exists; never raises."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def remove_stale(directory: str | Path) -> list[Path]:
    """Removes `.tmp-*` leftovers in `directory` whose writer (on this host) is no longer running.

    Returns:
        The paths removed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    for entry in directory.iterdir():
        match = _TMP_NAME.match(entry.name)
        if match and match["host"] == _HOST and not _running(int(match["pid"])):
            remove(entry)
            removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except OSError as error:
        return error.errno == errno.EPERM  # exists, owned by someone else
    return True
