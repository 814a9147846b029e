"""Networks built from a spec: an :class:`~edgenas.space.spec.ArchSpec` (DARTS cells) or an
:class:`~edgenas.space.evolved.EvolvedSpec` (a grown chain of blocks).

``build(spec)`` is the one constructor of a searched network; it needs no
supernet and no search code. Baselines (MobileNetV2/V3, EfficientNet) live in
:mod:`edgenas.models.baselines`.
"""

from __future__ import annotations

import os

from edgenas.space.evolved import load_spec


def build(spec):
    """Build the (randomly initialised) network a spec describes: the one constructor of searched networks.

    Returns:
        :class:`edgenas.models.derived.DerivedNet` for an :class:`ArchSpec`,
        :class:`edgenas.models.evolved.EvolvedNet` for an ``EvolvedSpec``;
        ``forward(x [B, C, R, R]) -> logits [B, num_classes]``.
    """
    from edgenas.space.evolved import EvolvedSpec

    if isinstance(spec, EvolvedSpec):
        from edgenas.models.evolved import EvolvedNet

        return EvolvedNet(spec)
    from edgenas.models.derived import DerivedNet

    return DerivedNet(spec)


def load_weights(path: str | os.PathLike) -> dict:
    """The state dict in ``path`` (read with ``weights_only``: no code runs).

    Raises:
        CheckpointError: the file is missing or is not a PyTorch state dict (one line).
    """
    from pathlib import Path

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
    from pathlib import Path

    from edgenas.errors import CheckpointError

    path = Path(run_dir_or_arch)
    spec = load_spec(path)
    model = build(spec)
    if weights is None and path.is_dir() and (path / "weights.pt").is_file():
        weights = path / "weights.pt"
    if weights is not None:
        state = load_weights(weights)
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise CheckpointError(f"cannot load weights {weights}: {str(exc).splitlines()[0]}") from None
    return model
