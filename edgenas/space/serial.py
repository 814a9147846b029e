"""What every spec of every space shares: its JSON form, its hash and its file (``arch.json``).

A spec class mixes in :class:`SpecFile` and defines ``to_dict`` (with ``space`` and
``space_version`` first) and ``from_dict``; :func:`chain_to_dict` and
:func:`chain_from_dict` write and read the specs that are a chain of one kind of
item (blocks, stages).
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from dataclasses import asdict
from typing import Any

from edgenas.errors import ArchSpecError

__all__ = ["SpecFile", "chain_from_dict", "chain_to_dict", "common_fields"]


class SpecFile(abc.ABC):
    """``to_json``, ``sha256`` (of the canonical JSON: the manifest's source-spec hash), ``save``, and the check
    every spec's ``__post_init__`` starts with (:meth:`check_space`)."""

    space: str
    space_version: int

    @abc.abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """The JSON form, ``space`` and ``space_version`` first."""

    def check_space(self, name: str, version: int) -> None:
        """Refuse a spec of another space, or of a newer version of this one than this edgenas reads."""
        if self.space != name:
            raise ArchSpecError(f"unsupported space {self.space!r} for a {type(self).__name__} (it reads {name!r})")
        if self.space_version > version:
            raise ArchSpecError(f"arch.json is from {name} version {self.space_version}, newer than this edgenas "
                                f"({version})")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def sha256(self) -> str:
        """Hash of the canonical JSON form (the manifest's source-spec hash)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    def save(self, path: str | os.PathLike) -> None:
        from edgenas.rundir import atomic_write_text

        atomic_write_text(path, self.to_json())


def common_fields(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` (a spec's ``asdict``) with ``projector`` and ``extra`` in their JSON forms, ``space`` first."""
    d["projector"] = list(d["projector"])
    d["extra"] = dict(d["extra"])
    return {"space": d.pop("space"), "space_version": d.pop("space_version"), **d}


def chain_to_dict(spec, items: str) -> dict[str, Any]:
    """The JSON form of a spec whose field ``items`` is a tuple of dataclasses."""
    d = asdict(spec)
    d[items] = [asdict(item) for item in getattr(spec, items)]
    return common_fields(d)


def chain_from_dict(cls, data: Any, items: str, item_cls, required: set[str]):
    """The spec ``cls`` of an ``arch.json``'s contents, its field ``items`` a list of ``item_cls`` objects.

    Raises:
        ArchSpecError: not an object, unknown or missing fields, a malformed field.
    """
    if not isinstance(data, dict):
        raise ArchSpecError("arch.json must hold a JSON object")
    unknown = set(data) - set(cls.__dataclass_fields__)
    if unknown:
        raise ArchSpecError(f"arch.json has unknown fields: {', '.join(sorted(unknown))}")
    missing = required - set(data)
    if missing:
        raise ArchSpecError(f"arch.json lacks fields: {', '.join(sorted(missing))}")
    d = dict(data)
    try:
        d[items] = tuple(item_cls(**dict(item)) for item in d[items])
        d["projector"] = tuple(int(p) for p in d.get("projector", ()))
        d["extra"] = tuple(sorted((str(k), str(v)) for k, v in dict(d.get("extra", {})).items()))
    except (TypeError, ValueError) as exc:
        raise ArchSpecError(f"arch.json has a malformed field: {exc}") from None
    return cls(**d)
