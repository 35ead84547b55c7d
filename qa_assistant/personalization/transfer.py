"""Copying a base model's weights into a new model: by name and shape, with row remapping.

Variables are matched by their Keras path (`token_embedding/embeddings`,
`gru_0/gru_cell/kernel`, `answer_logits/kernel`, ...); when a path occurs
several times (two towers with the same layer names), the k-th occurrence in
the new model takes the k-th in the base. A matched variable of the same
shape is copied. One whose rows stand for tokens or answers (the token
embedding, the class head) has a `Remap`: the rows of tokens or answers the
two models share are copied to their new positions, the others are
initialised by the remap's `fill` (this is checked before the shapes: the
same number of rows can stand for other words or answers). Everything else keeps its fresh
initialisation, and the `TransferReport` says which variables were loaded,
remapped, new or skipped (same name, other shape).

Example:

>>> import keras
>>> base = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
>>> new = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="head")])
>>> report = transfer_weights(new, [(v.path, v.numpy()) for v in base.weights])
>>> report.loaded
['head/kernel', 'head/bias']
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

log = logging.getLogger(__name__)

Fill = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Remap:
    """How the rows along `axis` of a variable map between the base and the new model.

    Attributes:
        axis: the axis whose entries are tokens or answers.
        index: for every entry of the new variable, the base entry it takes
            (`-1`: none, it is new).
        what: what the entries are (for the log): `words`, `answers`.
        fill: `(new entries mask, value with the shared entries copied) ->
            value`: initialises the new entries; `None` keeps their fresh
            initialisation.
    """

    axis: int
    index: np.ndarray
    what: str
    fill: Fill | None = None


@dataclass
class TransferReport:
    """What `transfer_weights` did, variable by variable."""

    loaded: list[str] = field(default_factory=list)
    remapped: list[tuple[str, str, int, int]] = field(default_factory=list)  # (name, what, kept, new)
    new: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, why)
    unused: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "remapped": [{"name": n, "of": w, "kept": k, "new": m} for n, w, k, m in self.remapped],
            "new": self.new,
            "skipped": [{"name": n, "why": w} for n, w in self.skipped],
            "unused": self.unused,
        }

    def log(self, source: str) -> None:
        """Logs one summary line and one line per kind of outcome."""
        log.info(
            "init from %s: %d variables loaded, %d remapped, %d newly initialised, %d skipped",
            source,
            len(self.loaded),
            len(self.remapped),
            len(self.new),
            len(self.skipped),
        )
        for name, what, kept, new in self.remapped:
            log.info("  remapped %s: %d %s kept from the base, %d new", name, kept, what, new)
        if self.new:
            log.info("  newly initialised: %s", ", ".join(self.new))
        for name, why in self.skipped:
            log.warning("  skipped %s: %s", name, why)
        if self.unused:
            log.info("  base variables not used: %s", ", ".join(self.unused))


def transfer_weights(
    model: keras.Model,
    source: Sequence[tuple[str, np.ndarray]],
    remaps: dict[str, Remap] | None = None,
) -> TransferReport:
    """Assigns `source` values to `model`'s variables with the same path (see the module docstring).

    Args:
        model: the freshly built new model.
        source: `(path, value)` of the base model's variables, in its order.
        remaps: by path, variables whose rows are remapped.

    Returns:
        The report.
    """
    remaps = remaps or {}
    by_name: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    for name, value in source:
        by_name[name].append(np.asarray(value))
    used: collections.Counter[str] = collections.Counter()
    report = TransferReport()
    for variable in model.weights:
        name = variable.path
        candidates = by_name.get(name, [])
        if used[name] >= len(candidates):
            report.new.append(name)
            continue
        value = candidates[used[name]]
        used[name] += 1
        target = tuple(variable.shape)
        remap = remaps.get(name)
        if remap is not None and _remappable(value.shape, target, remap) and not _identity(remap, value):
            # Checked before the shapes: the same number of rows can still mean other words or answers.
            merged, kept = _remap(value, np.asarray(variable.numpy()), remap)
            variable.assign(merged.astype(variable.dtype))
            report.remapped.append((name, remap.what, kept, target[remap.axis] - kept))
        elif value.shape == target:
            variable.assign(value.astype(variable.dtype))
            report.loaded.append(name)
        else:
            report.skipped.append((name, f"shape {value.shape} in the base, {target} here"))
    report.unused = [n for n, values in by_name.items() if used[n] < len(values)]
    return report


def _remappable(source: tuple[int, ...], target: tuple[int, ...], remap: Remap) -> bool:
    same_rank = len(source) == len(target)
    others = [s == t for axis, (s, t) in enumerate(zip(source, target, strict=False)) if axis != remap.axis]
    return same_rank and all(others) and len(remap.index) == target[remap.axis]


def _identity(remap: Remap, value: np.ndarray) -> bool:
    return len(remap.index) == value.shape[remap.axis] and bool(
        np.array_equal(remap.index, np.arange(len(remap.index)))
    )


def _remap(value: np.ndarray, fresh: np.ndarray, remap: Remap) -> tuple[np.ndarray, int]:
    """The new value: shared entries from `value`, new ones from `fill` (or `fresh`)."""
    index = np.asarray(remap.index)
    kept = (index >= 0) & (index < value.shape[remap.axis])
    merged = np.moveaxis(fresh.copy(), remap.axis, 0)
    merged[kept] = np.moveaxis(value, remap.axis, 0)[index[kept]]
    merged = np.moveaxis(merged, 0, remap.axis)
    if remap.fill is not None and (~kept).any():
        merged = remap.fill(~kept, merged)
    return merged, int(kept.sum())


def index_map(new: Sequence[str], base: Sequence[str]) -> np.ndarray:
    """For every item of `new`, its position in `base` or -1.

    >>> index_map(["a", "x", "b"], ["b", "a"]).tolist()
    [1, -1, 0]
    """
    position = {item: i for i, item in enumerate(base)}
    return np.asarray([position.get(item, -1) for item in new], dtype=np.int64)
