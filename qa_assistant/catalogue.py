"""Named choices of one config key (`encoder.type`, `decoder.type`, `task.type`): a small registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from qa_assistant.errors import UserError, closest

T = TypeVar("T")


class Catalogue(Generic[T]):
    """Builders (or classes) by name; an unknown name is a `UserError` that lists the known ones.

    Example:

    >>> encoders = Catalogue("encoder")
    >>> @encoders.register("gru")
    ... def build_gru(): ...
    >>> encoders.names(), encoders.get("gru") is build_gru
    (['gru'], True)
    >>> encoders.get("gur")
    Traceback (most recent call last):
    qa_assistant.errors.UserError: unknown encoder 'gur' (did you mean 'gru'?); expected one of: gru
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that adds its argument under `name`."""

        def add(entry: T) -> T:
            self._entries[name] = entry
            return entry

        return add

    def names(self) -> list[str]:
        """The accepted names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The entry for `name`."""
        if name not in self._entries:
            raise UserError(
                f"unknown {self.what} '{name}'{closest(name, self.names())}; "
                f"expected one of: {', '.join(self.names())}"
            )
        return self._entries[name]
