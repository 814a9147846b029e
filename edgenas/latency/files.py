"""Where latency tables live: the one naming rule and the one search path.

A table of the cell space on ``rpi4`` with LiteRT in FP32 is
``rpi4-litert-fp32.json``; other spaces put their name after the device's
(``rpi4-evolved-cnn-litert-fp32.json``). :func:`find_table` looks in, first
match wins (so a measured table of the user's beats a shipped prior):

1. each directory of ``$EDGENAS_LUTS_DIR`` (``os.pathsep``-separated),
2. ``./luts`` (where ``edgenas lut build`` writes),
3. ``~/.cache/edgenas/luts``,
4. the estimated prior tables shipped in ``devices/luts/`` (:data:`SHIPPED_DIR`).

A search held to several tables (``--latency-also FILE=MS``) names each with its budget (:func:`parse_also`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import devices
from edgenas.space.spec import SPACE_NAME

__all__ = ["SHIPPED_DIR", "find_table", "parse_also", "table_dirs", "table_file_name"]

#: the prior tables shipped with edgenas (package data of ``devices``)
SHIPPED_DIR = Path(devices.__file__).resolve().parent / "luts"


def table_file_name(device: str, runtime: str, precision: str = "fp32", space: str = SPACE_NAME) -> str:
    """``<device>[-<space>]-<runtime>-<precision>.json``; the cell space (the default) is not named."""
    prefix = device if space == SPACE_NAME else f"{device}-{space}"
    return f"{prefix}-{runtime}-{precision}.json"


def table_dirs() -> list[Path]:
    """The table search path, in order (see the module docstring)."""
    dirs = [Path(p) for p in os.environ.get("EDGENAS_LUTS_DIR", "").split(os.pathsep) if p]
    return [*dirs, Path("luts"), Path("~/.cache/edgenas/luts").expanduser(), SHIPPED_DIR]


def find_table(device: str, runtime: str, precision: str = "fp32", dirs: Sequence[str | Path] | None = None,
               space: str = SPACE_NAME) -> Path | None:
    """The first table of ``device``/``runtime``/``precision`` of ``space`` on the search path, or None.

    Args:
        dirs: directories to search instead of :func:`table_dirs` (tests).
    """
    name = table_file_name(device, runtime, precision, space)
    for directory in table_dirs() if dirs is None else dirs:
        path = Path(directory).expanduser() / name
        if path.is_file():
            return path
    return None


def parse_also(entries: Sequence[str]) -> list[tuple[str, float]]:
    """``(table path, budget ms)`` of each ``--latency-also FILE=MS``.

    Raises:
        ConfigError: an entry without ``=``, or a budget that is not a number > 0.
    """
    from edgenas.errors import ConfigError

    out = []
    for entry in entries:
        path, _, ms = str(entry).rpartition("=")
        try:
            budget = float(ms)
        except ValueError:
            budget = 0.0
        if not path or not budget > 0:
            raise ConfigError(f"--latency-also takes FILE=MS (another latency table and its budget in ms > 0), "
                              f"got {entry!r}")
        out.append((path, budget))
    return out
