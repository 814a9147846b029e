"""Networks built from a spec: an :class:`~edgenas.space.spec.ArchSpec` (DARTS cells) or an
:class:`~edgenas.space.evolved.EvolvedSpec` (a grown chain of blocks).

``build(spec)`` is the one constructor of a searched network; it needs no
supernet and no search code. Baselines (MobileNetV2/V3, EfficientNet) live in
:mod:`edgenas.models.baselines`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgenas.space.registry import load_spec

__all__ = ["ModelName", "build", "load", "load_into", "load_weights", "resolve_model_name"]


@dataclass(frozen=True)
class ModelName:
    """What a model argument names: a searched network (a run directory or an ``arch.json``) or a baseline.

    Attributes:
        text: the argument as given.
        kind: ``searched`` or ``baseline``.
        path: the run directory or arch.json of a searched network (it may not exist: see :attr:`exists`).
        baseline, width: a baseline's registered name and its alias's width (``mobilenet_v2_035``: 0.35).
    """

    text: str
    kind: str
    path: Path | None = None
    baseline: str | None = None
    width: float | None = None

    @property
    def exists(self) -> bool:
        return self.path is not None and self.path.exists()


def resolve_model_name(text: str) -> ModelName:
    """The one rule for what a model argument means (``profile``, ``export``, ``finetune``, ``sweep``...).

    A registered baseline name (or a width alias of one) is that baseline; any other
    existing path, or anything written as a path (a ``/``, a ``.json`` suffix), is a
    searched network. A name that is both a baseline and an existing path is refused.

    Raises:
        ConfigError: a baseline name that is also a path here.
        UnknownNameError: neither a baseline nor a path (close baseline names listed).
    """
    from edgenas.errors import ConfigError, UnknownNameError
    from edgenas.models.baselines import resolve_baseline

    path = Path(text)
    try:
        base, width = resolve_baseline(text)
    except UnknownNameError as exc:
        if path.exists() or path.suffix == ".json" or "/" in text or "\\" in text:
            return ModelName(text, "searched", path)
        raise UnknownNameError(f"{exc}; nor is it a file or directory") from None
    if path.exists():  # a local file named like a baseline would be silently ignored otherwise
        raise ConfigError(f"{text!r} is both a baseline name and a path; pass the path as ./{text}")
    return ModelName(text, "baseline", baseline=base, width=width)


def build(spec):
    """Build the (randomly initialised) network a spec describes: the one constructor of searched networks.

    Returns:
        :class:`edgenas.models.derived.DerivedNet` for an :class:`ArchSpec`,
        :class:`edgenas.models.evolved.EvolvedNet` for an ``EvolvedSpec``;
        ``forward(x [B, C, R, R]) -> logits [B, num_classes]``.
    """
    from edgenas.space.registry import SPACES

    network = SPACES.get(spec.space).network_class()
    if _may_be_huge(spec):  # counted on the meta device first: a typo must not reach the allocator
        from edgenas.profiler import check_buildable

        check_buildable(lambda: network(spec), (spec.in_channels, spec.resolution, spec.resolution),
                        f"the {spec.space} network of this spec")
    return network(spec)


#: any width, size or count above this in a spec makes :func:`build` count the network before building it
_QUICK_LIMIT = 512


def _may_be_huge(spec) -> bool:
    def ints(value):
        if isinstance(value, bool):
            return
        if isinstance(value, int):
            yield value
        elif isinstance(value, dict):
            for v in value.values():
                yield from ints(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                yield from ints(v)

    return any(v > _QUICK_LIMIT for v in ints(spec.to_dict()))


def load_weights(path: str | os.PathLike) -> dict:
    """The state dict in ``path`` (read with ``weights_only``: no code runs).

    Raises:
        CheckpointError: the file is missing or is not a PyTorch state dict (one line).
    """
    import torch

    from edgenas.errors import CheckpointError

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no weights at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # a corrupt file fails anywhere inside unpickling (seen: IndexError, UnpicklingError, EOFError)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"cannot load weights {path}: not a readable PyTorch state dict "
                              f"({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"cannot load weights {path}: it holds a {type(state).__name__}, not a state dict")
    return state


def load(run_dir_or_arch: str | os.PathLike, weights: str | os.PathLike | None = None):
    """Rebuild a network from a run directory (``arch.json`` + ``weights.pt``) or an arch.json.

    Raises:
        ArchSpecError: no or malformed arch.json; CheckpointError: weights do not fit.
    """
    path = Path(run_dir_or_arch)
    spec = load_spec(path)
    model = build(spec)
    if weights is None and path.is_dir() and (path / "weights.pt").is_file():
        weights = path / "weights.pt"
    if weights is not None:
        load_into(model, weights)
    return model


def load_into(model, path: str | os.PathLike) -> None:
    """Load the state dict in ``path`` into ``model``: every key, every shape (the one weight loader).

    Raises:
        CheckpointError: an unreadable file, or weights that do not fit the network (the first difference named).
    """
    from edgenas.errors import CheckpointError

    state = load_weights(path)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"cannot load weights {path}: {str(exc).strip().splitlines()[0]}") from None
