"""The search spaces edgenas knows, by name: how an ``arch.json`` of each is read and which network it builds.

An ``arch.json`` names its space (``space``: ``darts-light`` when absent, as in
the first files); :func:`spec_from_dict` and :func:`edgenas.models.build` look
the space up here instead of comparing strings. Torch-free: the network classes
are named, not imported.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

from bench.registry import Registry
from edgenas.errors import ArchSpecError, UnknownNameError
from edgenas.space.evolved import EVOLVED_SPACE
from edgenas.space.spec import SPACE_NAME
from edgenas.space.stages import STAGES_SPACE

__all__ = ["SPACES", "SearchSpace", "load_spec", "spec_from_dict"]


class UnknownSpaceError(ArchSpecError, UnknownNameError):
    """An ``arch.json`` names a space this edgenas does not know."""


@dataclass(frozen=True)
class SearchSpace:
    """One space: ``"module:Class"`` of its spec (with ``from_dict``) and of the network built from a spec."""

    spec: str
    network: str

    def spec_class(self):
        return _load(self.spec)

    def network_class(self):
        return _load(self.network)


def _load(target: str):
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


SPACES: Registry[SearchSpace] = Registry("space", UnknownSpaceError)
SPACES.register(SPACE_NAME, SearchSpace("edgenas.space.spec:ArchSpec", "edgenas.models.derived:DerivedNet"))
SPACES.register(EVOLVED_SPACE, SearchSpace("edgenas.space.evolved:EvolvedSpec", "edgenas.models.evolved:EvolvedNet"))
SPACES.register(STAGES_SPACE, SearchSpace("edgenas.space.stages:StageSpec", "edgenas.models.stages:StagesNet"))


def spec_from_dict(data: Any):
    """The spec of an ``arch.json``'s contents, of the space its ``space`` field names.

    Raises:
        ArchSpecError: not an object, an unknown space, or a malformed spec.
    """
    if not isinstance(data, dict):
        raise ArchSpecError("arch.json must hold a JSON object")
    return SPACES.get(data.get("space", SPACE_NAME)).spec_class().from_dict(data)


def load_spec(path: str | os.PathLike):
    """Read an ``arch.json`` (or a run directory holding one) of any space.

    Raises:
        ArchSpecError: missing, unreadable or malformed file.
    """
    from edgenas.space.spec import read_arch_json

    return spec_from_dict(read_arch_json(path)[1])
