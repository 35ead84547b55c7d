"""The run directory's state: its lock, the checks before a run starts or resumes in it, its inputs.

A run directory (`layout.py`) is new, or holds one run: finished (`metrics.json`),
or unfinished and resumable with the same config and data. One training process at a
time writes it (`RunLock`); a directory a failed call created is removed unless an
epoch was saved.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

from qa_assistant.atomic import replacing
from qa_assistant.config import Config, load_config
from qa_assistant.data.dataset import QAData
from qa_assistant.errors import UserError
from qa_assistant.layout import (
    CHECKPOINTS_DIR,
    CONFIG_FILE,
    DATA_DIR,
    MANIFEST_FILE,
    METRICS_FILE,
    RUN_MARKER,
    is_run_dir,
    split_file,
)
from qa_assistant.manifest import build_manifest, write_json
from qa_assistant.training.resume import latest_snapshot

log = logging.getLogger(__name__)


class RunLock:
    """An exclusive `flock` on a run directory while this process trains in it.

    Two processes training into one directory would overwrite each other's
    checkpoints and files; the second is refused instead. The lock goes with
    its descriptor (`release`, leaving the `with` block, or the process's
    end). Where `fcntl` is missing (Windows) nothing is locked.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.descriptor: int | None = None
        self.unsupported = False  # the file system refused locks: said once, not tried again

    @property
    def held(self) -> bool:
        return self.descriptor is not None

    def acquire(self) -> None:
        """Locks the directory; on a file system without locks, warns and goes on unlocked.

        A call while this lock is held (or after locks were refused) does nothing.

        Raises:
            UserError: another process holds the directory, or it cannot be opened.
        """
        if self.held or self.unsupported:
            return
        try:
            import fcntl
        except ImportError:
            return
        try:
            descriptor = os.open(self.run_dir, os.O_RDONLY)
        except OSError as error:
            raise UserError(
                f"output '{self.run_dir}' could not be opened ({error.strerror}); expected a readable directory"
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise UserError(
                f"output '{self.run_dir}' is being written by another training process; "
                "expected another --output, or to wait until that run ends"
            ) from None
        except OSError as error:  # e.g. a network file system without locks
            os.close(descriptor)
            log.warning("could not lock %s (%s); training without a lock", self.run_dir, error.strerror)
            self.unsupported = True
            return
        self.descriptor = descriptor

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)
            self.descriptor = None

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def check_output(run_dir: Path, restart: bool) -> None:
    """`run_dir` is new, empty or a run directory, and can be written.

    Raises:
        UserError: a file, a directory of other files, or a path this process cannot write.
    """
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"output '{run_dir}' is a file; expected a directory for the run")
    if run_dir.exists() and not is_run_dir(run_dir):
        raise UserError(
            f"output '{run_dir}' is a directory that holds other files, not a run; "
            f"expected a new or empty directory, or a run directory (with {RUN_MARKER})"
            + ("; --restart only deletes run directories" if restart else "")
        )
    _check_writable(run_dir)


def empty_run_dir(run_dir: Path) -> None:
    """Removes everything in `run_dir` but the directory itself (and so the lock on it)."""
    for entry in run_dir.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _check_writable(run_dir: Path) -> None:
    """The run directory can be created where it is asked for (checked before any data is read)."""
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"output '{run_dir}' lies under the file '{existing}'; expected a directory path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"output '{run_dir}': '{existing}' is not writable; expected a writable directory")


def discard_if_new(run_dir: Path, created: bool) -> None:
    """Removes a run directory this call created when no epoch was saved: nothing to resume.

    A finished run (its `metrics.json` written, its snapshots already discarded) stays.
    """
    if (
        created
        and not (run_dir / METRICS_FILE).is_file()
        and latest_snapshot(run_dir / CHECKPOINTS_DIR) is None
    ):
        shutil.rmtree(run_dir, ignore_errors=True)


def check_finished_matches(run_dir: Path, config: Config) -> None:
    """Refuses a finished run made with another config or from a changed local data file.

    Checked before any data is read: a key the given config leaves null counts
    as equal, since the run settled it from its data; a data file named by another
    path (the same command from another directory) counts as equal when its bytes
    are the ones the run recorded.
    """
    saved, given = load_config([run_dir / CONFIG_FILE]).flat(), config.flat()
    sources = _manifest_sources(run_dir)
    differ = [
        k
        for k, v in given.items()
        if v is not None and saved.get(k) != v and not _same_data_file(k, saved.get(k), v, sources)
    ]
    if differ:
        shown = ", ".join(f"{k} {saved.get(k)!r} -> {given[k]!r}" for k in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise UserError(
            f"'{run_dir}' holds a finished run with a different config ({shown}{more}); "
            "use another --output, or --restart to train again"
        )
    # The files under the names this command gives (one named by another path was compared above).
    named = {given[k] if given.get(k) is not None else saved.get(k) for k in ("data.train", "data.test")}
    for source, sha256 in sources.items():
        path = Path(source)
        if source in named and sha256 and path.is_file() and not _holds(path, sha256):
            raise UserError(
                f"'{run_dir}' holds a finished run made from another version of '{path}' (it changed "
                "since); use another --output, or --restart to train again"
            )


def check_resumable(run_dir: Path, config: Config, data: QAData) -> None:
    """Refuses an unfinished run made with another config or from other data.

    A data file named by another path (the same command from another directory)
    counts as the same when its bytes are the ones the run recorded.
    """
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        return
    before = _manifest_sources(run_dir) if (run_dir / MANIFEST_FILE).is_file() else {}
    saved_flat, given = load_config([saved]).flat(), config.flat()
    moved = [
        k
        for k in ("data.train", "data.test")
        if saved_flat.get(k) != given.get(k) and _same_data_file(k, saved_flat.get(k), given.get(k), before)
    ]
    if any(saved_flat.get(k) != v and k not in moved for k, v in given.items()):
        raise UserError(
            f"'{run_dir}' holds an unfinished run with a different config; "
            "use another --output, or --restart to discard it"
        )
    if not before:
        return
    renamed = {str(given[k]): str(saved_flat[k]) for k in moved}  # compared under the names the run recorded
    now = {renamed.get(s.source, s.source): s.sha256 for s in data.sources}
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    if changed:
        raise UserError(
            f"'{run_dir}' holds an unfinished run made from other data ({', '.join(changed)} changed "
            "since it started); use another --output, or --restart to discard it"
        )


def _same_data_file(key: str, saved: object, given: object, sources: dict[str, str | None]) -> bool:
    """`data.train` / `data.test` given by another path to a file with the bytes the run read."""
    if key not in ("data.train", "data.test") or not isinstance(given, str) or not sources.get(str(saved)):
        return False
    return _holds(Path(given), sources[str(saved)])


def _holds(path: Path, sha256: str) -> bool:
    """Whether `path` is a file with the bytes of this SHA-256 digest."""
    return path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256


def _manifest_sources(run_dir: Path) -> dict[str, str | None]:
    """Each data source the run's manifest names, with the hash its data had (None where none)."""
    manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    return {s["source"]: s.get("sha256") for s in manifest["sources"]}


def write_inputs(run_dir: Path, config: Config, data: QAData) -> None:
    config.save(run_dir / CONFIG_FILE)
    (run_dir / DATA_DIR).mkdir(exist_ok=True)
    for name, frame in (
        ("train", data.splits.train),
        ("validation", data.splits.validation),
        ("test", data.splits.test),
    ):
        with replacing(split_file(run_dir, name)) as tmp:
            if frame.empty:  # pandas would write one blank line, which reads back as no columns
                tmp.write_text("", encoding="utf-8")
            else:
                frame.to_json(tmp, orient="records", lines=True, force_ascii=False)
    write_json(
        run_dir / MANIFEST_FILE,
        build_manifest(
            seed=config.train.seed,
            config=config.to_dict(),
            sources=[vars(s) for s in data.sources],
            cleaning={k: v.as_dict() for k, v in data.reports.items()},
            split={"method": data.splits.method, **data.splits.sizes(), **data.splits.notes},
        ),
    )


def read_metrics(run_dir: Path) -> dict[str, float]:
    return json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))
