"""GROW, WIDEN and PRUNE of an evolved network, on its spec and state dict; GROW and WIDEN keep its function.

Net2Net (Chen et al., ICLR 2016, arXiv:1511.05641) makes a network larger
without changing what it computes, so that training goes on from where it was:

* **WIDEN** a channel group or a block's hidden layer from ``c`` to ``c' > c``
  channels: every new channel copies an existing one (its producing filter,
  its batch-norm entries, its depthwise filter), and each consumer's weights
  of the copied channel are shared among the copies. The shares are random
  positive fractions summing to one rather than ``1 / n``: the function is
  the same, and the copies get different gradients, so they do not stay
  identical forever (with equal shares they would).
* **GROW** inserts a residual block whose last batch norm has zero scale and
  shift: it adds exactly zero, until training moves that scale (the
  zero-initialised residual of Goyal et al., arXiv:1706.02677).
* **PRUNE** removes hidden channels (the unimportant path of the sparse
  routing); it changes the function, by as little as those channels mattered.

A mutation works on ``(spec, state dict)`` of the whole search model: the
network under ``net.`` and any heads that read the pooled features
(``feature_consumers``: the weight keys of those ``nn.Linear`` layers). It
returns the new spec and state dict, and a :class:`Transform` per kept key:
the same indexing, applied to the optimiser's momentum buffers, carries the
optimiser state across the mutation (:func:`carry_optimizer_state`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from edgenas.errors import ConfigError
from edgenas.space.evolved import BlockSpec, EvolvedSpec

__all__ = ["Mutation", "MutationResult", "Transform", "apply_mutation", "carry_optimizer_state", "grow",
           "prune_hidden", "widen_group", "widen_hidden"]

_BN = ("weight", "bias", "running_mean", "running_var")


@dataclass(frozen=True)
class Mutation:
    """What to change: ``grow`` (a residual block reading tensor ``where``), ``widen`` (channel group
    ``where``) or ``widen_hidden`` (block ``where``), to ``width`` channels."""

    kind: str
    where: int
    width: int

    def __post_init__(self) -> None:
        if self.kind not in ("grow", "widen", "widen_hidden"):
            raise ConfigError(f"unknown mutation {self.kind!r} (grow, widen, widen_hidden)")

    def describe(self) -> str:
        return {"grow": f"grow a block at tensor {self.where} (hidden {self.width})",
                "widen": f"widen group {self.where} to {self.width} channels",
                "widen_hidden": f"widen block {self.where} hidden to {self.width}"}[self.kind]


@dataclass(frozen=True)
class Transform:
    """Indexing that maps an old tensor to its new shape: ``(dim, index, coefficients or None)`` steps."""

    steps: tuple[tuple[int, torch.Tensor, torch.Tensor | None], ...] = ()
    source: str | None = None  # the old key (None: a new tensor)

    def __call__(self, t: torch.Tensor) -> torch.Tensor:
        for dim, index, coeff in self.steps:
            t = t.index_select(dim, index.to(t.device))
            if coeff is not None:
                shape = [1] * t.dim()
                shape[dim] = -1
                t = t * coeff.to(t.device, t.dtype).view(shape)
        return t


@dataclass(frozen=True)
class MutationResult:
    spec: EvolvedSpec
    state: dict[str, torch.Tensor]
    transforms: dict[str, Transform]  # new key -> how its old tensor maps (absent: a new tensor)


def _channel_map(old: int, new: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(index [new] of the old channel each new one copies, share [new] of its consumers' weight).

    The first ``old`` channels are themselves; the others copy random old ones.
    The shares of one old channel's copies are positive and sum to 1.
    """
    if new <= old:
        raise ConfigError(f"widening needs more channels than the {old} there are, got {new}")
    index = np.concatenate([np.arange(old), rng.integers(0, old, new - old)])
    share = rng.uniform(0.25, 1.0, new)
    totals = np.bincount(index, weights=share, minlength=old)
    return torch.from_numpy(index).long(), torch.from_numpy(share / totals[index]).float()


def _dup(state: dict, key: str, dim: int, index: torch.Tensor, out: dict, transforms: dict) -> None:
    t = Transform(((dim, index, None),), key)
    out[key] = t(state[key])
    transforms[key] = t


def _split(state: dict, key: str, dim: int, index: torch.Tensor, share: torch.Tensor, out: dict,
           transforms: dict) -> None:
    t = Transform(((dim, index, share),), key)
    out[key] = t(state[key])
    transforms[key] = t


def _producers(spec: EvolvedSpec, position: int) -> list[tuple[str, int]]:
    """(key, dim) of the tensors that produce tensor ``position`` (0: the stem, i + 1: block i)."""
    if position == 0:
        return [("net.stem.0.weight", 0)] + [(f"net.stem.1.{p}", 0) for p in _BN]
    i = position - 1
    return [(f"net.blocks.{i}.pw2.weight", 0)] + [(f"net.blocks.{i}.bn3.{p}", 0) for p in _BN]


def widen_group(spec: EvolvedSpec, state: dict[str, torch.Tensor], group: int, width: int,
                rng: np.random.Generator, feature_consumers: Sequence[str] = ()) -> MutationResult:
    """Widen every tensor of channel ``group`` (see :meth:`EvolvedSpec.groups`) to ``width`` channels.

    Raises:
        ConfigError: ``group`` is not a group, or ``width`` is not wider.
    """
    groups = spec.groups()
    positions = [t for t, g in enumerate(groups) if g == group]
    if not positions:
        raise ConfigError(f"no channel group {group} (groups: {sorted(set(groups))})")
    old = spec.stem_channels if positions[0] == 0 else spec.blocks[positions[0] - 1].out
    index, share = _channel_map(old, width, rng)
    out, transforms = _identity(state)
    for t in positions:
        for key, dim in _producers(spec, t):
            _dup(state, key, dim, index, out, transforms)
        consumers = [f"net.blocks.{t}.pw1.weight"] if t < len(spec.blocks) else list(feature_consumers)
        for key in consumers:
            _split(state, key, 1, index, share, out, transforms)
    blocks = [dataclasses.replace(b, out=width) if i + 1 in positions else b for i, b in enumerate(spec.blocks)]
    new = dataclasses.replace(spec, stem_channels=width if 0 in positions else spec.stem_channels,
                              blocks=tuple(blocks))
    return MutationResult(new, out, transforms)


def widen_hidden(spec: EvolvedSpec, state: dict[str, torch.Tensor], block: int, width: int,
                 rng: np.random.Generator) -> MutationResult:
    """Widen block ``block``'s expanded (hidden) layer to ``width`` channels."""
    if not 0 <= block < len(spec.blocks):
        raise ConfigError(f"no block {block} (the network has {len(spec.blocks)})")
    index, share = _channel_map(spec.blocks[block].hidden, width, rng)
    out, transforms = _identity(state)
    p = f"net.blocks.{block}."
    for key in [p + "pw1.weight", p + "dw.weight"] + [p + f"bn{n}.{q}" for n in (1, 2) for q in _BN]:
        _dup(state, key, 0, index, out, transforms)
    _split(state, p + "pw2.weight", 1, index, share, out, transforms)
    blocks = list(spec.blocks)
    blocks[block] = dataclasses.replace(blocks[block], hidden=width)
    return MutationResult(dataclasses.replace(spec, blocks=tuple(blocks)), out, transforms)


def grow(spec: EvolvedSpec, state: dict[str, torch.Tensor], position: int, hidden: int, kernel: int = 3,
         seed: int = 0) -> MutationResult:
    """Insert a residual block reading tensor ``position`` (0: after the stem), adding exactly zero at first."""
    from edgenas.models.evolved import EvoBlock

    if not 0 <= position <= len(spec.blocks):
        raise ConfigError(f"a block can be inserted at tensor 0..{len(spec.blocks)}, not {position}")
    width = spec.stem_channels if position == 0 else spec.blocks[position - 1].out
    new_block = BlockSpec(out=width, hidden=hidden, stride=1, kernel=kernel)
    torch.manual_seed(seed)
    module = EvoBlock(width, new_block)
    with torch.no_grad():
        module.bn3.weight.zero_()
        module.bn3.bias.zero_()
    out, transforms = {}, {}
    for key, value in state.items():
        parts = key.split(".")
        if key.startswith("net.blocks.") and int(parts[2]) >= position:
            new_key = ".".join(parts[:2] + [str(int(parts[2]) + 1)] + parts[3:])
        else:
            new_key = key
        out[new_key] = value
        transforms[new_key] = Transform((), key)
    for key, value in module.state_dict().items():
        out[f"net.blocks.{position}.{key}"] = value
    blocks = list(spec.blocks)
    blocks.insert(position, new_block)
    return MutationResult(dataclasses.replace(spec, blocks=tuple(blocks)), out, transforms)


def prune_hidden(spec: EvolvedSpec, state: dict[str, torch.Tensor], block: int, keep: torch.Tensor
                 ) -> MutationResult:
    """Remove the hidden channels of block ``block`` where ``keep`` (bool ``[hidden]``) is False.

    Raises:
        ConfigError: ``keep`` keeps no channel or has the wrong length.
    """
    keep = torch.as_tensor(keep, dtype=torch.bool)
    if keep.numel() != spec.blocks[block].hidden or not keep.any():
        raise ConfigError(f"block {block}: a keep mask of {spec.blocks[block].hidden} with at least one channel")
    index = keep.nonzero().squeeze(1)
    out, transforms = _identity(state)
    p = f"net.blocks.{block}."
    for key in [p + "pw1.weight", p + "dw.weight"] + [p + f"bn{n}.{q}" for n in (1, 2) for q in _BN]:
        _dup(state, key, 0, index, out, transforms)
    _dup(state, p + "pw2.weight", 1, index, out, transforms)
    blocks = list(spec.blocks)
    blocks[block] = dataclasses.replace(blocks[block], hidden=int(index.numel()))
    return MutationResult(dataclasses.replace(spec, blocks=tuple(blocks)), out, transforms)


def apply_mutation(spec: EvolvedSpec, state: dict[str, torch.Tensor], mutation: Mutation, rng: np.random.Generator,
                   feature_consumers: Sequence[str] = (), seed: int = 0) -> MutationResult:
    """Dispatch a :class:`Mutation`."""
    if mutation.kind == "grow":
        return grow(spec, state, mutation.where, mutation.width, seed=seed)
    if mutation.kind == "widen":
        return widen_group(spec, state, mutation.where, mutation.width, rng, feature_consumers)
    return widen_hidden(spec, state, mutation.where, mutation.width, rng)


def _identity(state: dict[str, torch.Tensor]) -> tuple[dict, dict]:
    return dict(state), {k: Transform((), k) for k in state}


def carry_optimizer_state(old: torch.optim.Optimizer, old_names: dict[int, str], new: torch.optim.Optimizer,
                          new_params: dict[str, torch.nn.Parameter], transforms: dict[str, Transform]) -> int:
    """Move the per-parameter state (SGD momentum, Adam moments) of ``old`` into ``new`` through ``transforms``.

    A state tensor shaped like its parameter is mapped like the parameter was;
    scalars (Adam's step count) are copied.

    Args:
        old_names: ``id(param) -> key`` of the old model's parameters.
        new_params: ``key -> param`` of the new model.

    Returns:
        How many parameters kept their state (new parameters start without one).
    """
    by_key = {old_names[id(p)]: s for p, s in old.state.items() if id(p) in old_names}
    carried = 0
    for key, param in new_params.items():
        t = transforms.get(key)
        if t is None or t.source not in by_key:
            continue
        new.state[param] = {name: t(value) if torch.is_tensor(value) and value.dim() > 0 else value
                            for name, value in by_key[t.source].items()}
        carried += 1
    return carried
