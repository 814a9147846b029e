"""The option types every command shares: comma-separated lists and repeated KEY=VALUE pairs.

One owner for the parsing and its messages, so ``--fractions 0.1,x`` and
``--resolutions 32,x`` fail the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["CommaList", "key_values", "plugin_option", "split_csv"]


def split_csv(text: str) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``."""
    return tuple(v.strip() for v in str(text).split(",") if v.strip())


class CommaList(click.ParamType):
    """A comma-separated list: ``--resolutions 32,96`` -> ``(32, 96)``; a tuple or list passes through converted.

    Args:
        kind: the type of each item (``int``, ``float``, ``str``).
        what: the items' name in messages ("integers", "label fractions").
        minimum: the least value an item may take (numbers only).
        allow_empty: accept an empty list (else ``"empty list"`` is an error).
    """

    def __init__(self, kind: Callable[[str], Any] = str, what: str = "values", minimum: float | None = None,
                 allow_empty: bool = False) -> None:
        self.kind, self.what, self.minimum, self.allow_empty = kind, what, minimum, allow_empty
        self.name = {int: "INTS", float: "NUMBERS"}.get(kind, "LIST")

    def convert(self, value, param, ctx):
        if value is None:
            return None
        raw = value if isinstance(value, (tuple, list)) else split_csv(value)
        try:
            items = tuple(self.kind(v.strip() if isinstance(v, str) else v) for v in raw)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a comma-separated list of {self.what}", param, ctx)
        if not items and not self.allow_empty:
            self.fail("empty list", param, ctx)
        if self.minimum is not None and any(v < self.minimum for v in items):
            self.fail(f"{value!r}: give {self.what} >= {self.minimum:g}", param, ctx)
        return items


def key_values(what: str = "KEY=VALUE", kind: Callable[[str], Any] = str, as_dict: bool = False,
               require_value: bool = True):
    """A callback for a repeatable ``KEY=VALUE`` option (``--weights mnv3=w.pt``).

    Values of a non-string ``kind`` may also come comma-joined in one option
    (``--ssl-weights rotation=0.5,dino=1``); string values are taken whole (they may hold commas).
    Returns ``((key, value), ...)``, or a dict with ``as_dict``.
    """
    def convert(ctx, param, values):
        items = values if isinstance(values, (tuple, list)) else (values,)
        pairs = []
        for value in (item for v in items if v for item in ((v,) if kind is str else split_csv(v))):
            key, sep, text = str(value).partition("=")
            if not sep or not key.strip() or (require_value and not text.strip()):
                raise click.BadParameter(f"{value!r} is not {what}")
            try:
                pairs.append((key.strip(), kind(text)))
            except ValueError:
                raise click.BadParameter(f"{value!r} is not {what}") from None
        return dict(pairs) if as_dict else tuple(pairs)
    return convert


def _import_plugins(ctx, param, values):
    from edgenas.plugins import import_plugins

    import_plugins(tuple(values))
    return tuple(values)


#: ``--plugin``, imported as soon as the command line is read (before a run's arch.json names its ops)
plugin_option = click.option(
    "--plugin", "plugins", multiple=True, callback=_import_plugins, expose_value=False, is_eager=False,
    help="Python module or .py file to import first, e.g. one that registers custom ops; a plugin is code that "
         "runs with your rights. Repeatable.")
