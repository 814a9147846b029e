"""A rich progress bar for long loads, shown only when there is enough to wait for.

It writes to stderr, so that commands printing JSON or tables on stdout stay clean.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")

PROGRESS_THRESHOLD = 2000
"""Items below which no bar is drawn: such loads take well under a second."""


def track(iterable: Iterable[T], total: int, description: str, weight: int = 1) -> Iterator[T]:
    """Yield from ``iterable``, with a progress bar if ``total * weight`` items exceed the threshold.

    Args:
        total: number of steps ``iterable`` yields.
        weight: items per step (a batch size), for the threshold only.
    """
    if total * weight <= PROGRESS_THRESHOLD:
        yield from iterable
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(description, total=total)
        for item in iterable:
            yield item
            progress.advance(task)
