"""The one progress bar of edgenas: rich, on stderr, so that JSON and tables on stdout stay clean.

* :class:`ProgressBar` for a job of known steps (a training loop: epochs, steps,
  a live ``info`` field such as the loss), or of steps reported as
  ``(what, done, total)`` (measurements: :meth:`ProgressBar.report`);
* :func:`track` for a long load that may be too short to deserve a bar.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["PROGRESS_THRESHOLD", "ProgressBar", "track"]

T = TypeVar("T")

PROGRESS_THRESHOLD = 2000
"""Items below which :func:`track` draws no bar: such loads take well under a second."""


class ProgressBar:
    """A rich progress bar; a context manager that does nothing when disabled.

    Args:
        title: shown in bold before the task's description (``search``, ``finetune mnv3``).
        total: steps in all (None: unknown until :meth:`report` says).
        completed: steps already done (a resumed job).
        description: the first description (``epoch 1/30``).
        console: a ``rich.console.Console`` (default: stderr).
        enabled: False draws nothing (``--no-progress``, or a rank other than 0).
        only_on_terminal: draw only when stderr is a terminal (measurement commands piped to a file).
        transient: remove the bar when done (measurements); training bars stay as a record.
        subtitle: plain text after the title (``mnv3 10% labels``).
    """

    def __init__(self, title: str, total: int | None = None, completed: int = 0, description: str = "",
                 console=None, enabled: bool = True, only_on_terminal: bool = False, transient: bool = False,
                 subtitle: str = "") -> None:
        self.enabled = enabled and (not only_on_terminal or sys.stderr.isatty())
        self._args = (title, total, completed, description, console, transient, subtitle)
        self._bar = None

    def __enter__(self) -> ProgressBar:
        if not self.enabled:
            return self
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        title, total, completed, description, console, transient, subtitle = self._args
        heading = (f"[bold]{title}[/] " if title else "") + (f"{subtitle} " if subtitle else "")
        self._bar = Progress(TextColumn(heading + "{task.description}"), BarColumn(),
                             TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[info]}"),
                             TimeElapsedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                             transient=transient)
        self._bar.__enter__()
        self._task = self._bar.add_task(description, total=total, completed=completed, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
            self._bar = None

    def update(self, advance: int = 0, description: str | None = None, info: str | None = None,
               completed: int | None = None, total: int | None = None) -> None:
        """Move the bar by ``advance`` steps (or to ``completed``); change its description or info field."""
        if self._bar is None:
            return
        fields = {k: v for k, v in (("description", description), ("info", info), ("completed", completed),
                                    ("total", total)) if v is not None}
        self._bar.update(self._task, advance=advance, **fields)

    def report(self, what: str, done: int, total: int) -> None:
        """The ``(what, done, total)`` callback of measurement loops: ``done`` of ``total``, now doing ``what``."""
        self.update(description=what, completed=done, total=total or None)

    def advance(self) -> None:
        self.update(advance=1)


def track(iterable: Iterable[T], total: int, description: str, weight: int = 1) -> Iterator[T]:
    """Yield from ``iterable``, with a progress bar if ``total * weight`` items exceed the threshold.

    Args:
        total: number of steps ``iterable`` yields.
        weight: items per step (a batch size), for the threshold only.
    """
    if total * weight <= PROGRESS_THRESHOLD:
        yield from iterable
        return
    with ProgressBar("", total, description=description, transient=True) as bar:
        for item in iterable:
            yield item
            bar.advance()
