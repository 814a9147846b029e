"""One small name -> object registry, used for ops, spaces, SSL methods, exporters, runtimes and transports.

Register by name, duplicates are an error, unknown names list close matches
and nothing is auto-corrected (docs/architecture.md). It lives in ``bench``, the
torch-free package every other one may import, so that the runtimes (on the
board) and the transports use the same class as the search.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from bench.errors import DuplicateNameError, UnknownNameError

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    """A named collection of objects of one kind.

    Args:
        kind: what the names name ("op", "runtime"), for messages.
        error: the :class:`UnknownNameError` subclass :meth:`get` raises.

    Example:
        >>> OPS = Registry("op")
        >>> @OPS.register("double")
        ... def double(x):
        ...     return 2 * x
        >>> OPS.get("double")(3)
        6
    """

    def __init__(self, kind: str, error: type[UnknownNameError] = UnknownNameError) -> None:
        self.kind = kind
        self.error = error
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is None.

        Raises:
            DuplicateNameError: ``name`` is already registered.
            ValueError: ``name`` is empty or not a string.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def add(item: T) -> T:
            if name in self._items:
                raise DuplicateNameError(
                    f"{self.kind} {name!r} is already registered; pick another name "
                    f"or call unregister({name!r}) first"
                )
            self._items[name] = item
            return item

        if obj is None:
            return add
        return add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name``; raises :class:`UnknownNameError` if absent."""
        self.get(name)
        del self._items[name]

    def get(self, name: str) -> T:
        """Return the object registered as ``name``.

        Raises:
            UnknownNameError: with the closest registered names in the message.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise self.error(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), list(self._items), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        known = ", ".join(sorted(self._items)) or "none"
        return f"unknown {self.kind} {name!r}{hint} (known: {known})"

    def names(self) -> list[str]:
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._items.items())

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
