"""What every frozen config dataclass shares: a plain-dict form (YAML) and strict parsing of it."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, TypeVar

from edgenas.errors import ConfigError

__all__ = ["config_from_dict", "config_to_dict"]

C = TypeVar("C")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` with tuples as lists (YAML and JSON have no tuples)."""
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def config_from_dict(cls: type[C], data: Any, what: str, retired: frozenset[str] = frozenset()) -> C:
    """Build ``cls`` from a mapping (YAML experiment file, ``config.yaml``); lists become tuples.

    ``retired`` names options that earlier versions wrote and that mean nothing now: they are dropped.

    Raises:
        ConfigError: not a mapping, unknown keys (with close matches), or values ``cls`` refuses.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a {what} config must be a mapping of option: value")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        k = str(key).replace("-", "_")
        if k in retired:
            continue
        if k not in names:
            close = difflib.get_close_matches(k, list(names), n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown {what} option {key!r}{hint}")
        kwargs[k] = tuple(value) if isinstance(value, list) else value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(str(exc)) from None
