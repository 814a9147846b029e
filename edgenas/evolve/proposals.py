"""The evolved space's moves: the seed network, the mutations the limits allow, and the spec each one leads to.

Pure functions of an :class:`~edgenas.space.evolved.EvolvedSpec` and the search
config: the evolution search ranks and tries these (:mod:`edgenas.evolve.runner`),
the evolved latency tables measure the blocks they reach (:mod:`edgenas.latency.evolved`).
"""

from __future__ import annotations

import dataclasses
import math

from edgenas.evolve.mutations import Mutation
from edgenas.search.config import SearchConfig
from edgenas.space.evolved import BlockSpec, EvolvedSpec

__all__ = ["cost_of", "propose", "seed_spec", "spec_after"]


def _round8(x: float) -> int:
    return max(8, int(math.ceil(x / 8)) * 8)


def seed_spec(cfg: SearchConfig, num_classes: int) -> EvolvedSpec:
    """The seed: a stem of ``seed_channels`` and ``seed_blocks`` blocks, the first ones halving the map."""
    halvings = 0
    size = cfg.resolution
    blocks = []
    for _ in range(cfg.seed_blocks):
        stride = 2 if size % 2 == 0 and size > 4 and halvings < 3 else 1
        halvings += stride == 2
        size //= stride
        blocks.append(BlockSpec(out=cfg.seed_channels, hidden=cfg.seed_channels * cfg.expansion, stride=stride))
    two_view = any(p in cfg.ssl_parts for p in ("barlow", "ntxent"))
    return EvolvedSpec(stem_channels=cfg.seed_channels, blocks=tuple(blocks), resolution=cfg.resolution,
                       num_classes=num_classes, projector=cfg.projector if two_view else ())


def cost_of(spec: EvolvedSpec, cfg: SearchConfig, latency=None) -> dict[str, float]:
    """Params and MACs of the deployable network (and predicted latency), and the normalised cost (max of ratios)."""
    from edgenas.models import build
    from edgenas.profiler import count_macs, count_params

    deploy = build(dataclasses.replace(spec, projector=()))
    params, macs = count_params(deploy), count_macs(deploy, spec.resolution)
    ratios = [params / cfg.max_params, macs / cfg.max_macs]
    out = {"params": params, "macs": macs}
    if latency is not None:
        out["latency_ms"] = latency(spec)
        if cfg.latency_ms:
            ratios.append(out["latency_ms"] / cfg.latency_ms)
    out["cost"] = max(ratios)
    return out


def propose(spec: EvolvedSpec, tracker, cfg: SearchConfig) -> list[tuple[Mutation, float]]:
    """Every mutation the limits allow, with the sensitivity of the place it changes (highest first)."""
    out: list[tuple[Mutation, float]] = []
    unit = lambda t: "stem" if t == 0 else f"block{t - 1}.out"  # noqa: E731 - the unit producing tensor t
    widths = [spec.stem_channels] + [b.out for b in spec.blocks]
    groups = spec.groups()
    for g in sorted(set(groups)):
        width = widths[g]
        new = min(cfg.max_channels, _round8(width * cfg.widen_factor))
        if new > width:
            members = [t for t, gg in enumerate(groups) if gg == g]
            out.append((Mutation("widen", g, new), max(tracker.sensitivity(unit(t), cfg.importance_mass)
                                                       for t in members)))
    for i, block in enumerate(spec.blocks):
        new = min(cfg.max_channels * cfg.expansion, _round8(block.hidden * cfg.widen_factor))
        if new > block.hidden:
            out.append((Mutation("widen_hidden", i, new), tracker.sensitivity(f"block{i}.hidden",
                                                                                cfg.importance_mass)))
    if len(spec.blocks) < cfg.max_blocks:
        for t in range(len(spec.blocks) + 1):
            out.append((Mutation("grow", t, widths[t] * cfg.expansion), tracker.sensitivity(unit(t),
                                                                                            cfg.importance_mass)))
    return sorted(out, key=lambda m: -m[1])


def spec_after(spec: EvolvedSpec, mutation: Mutation) -> EvolvedSpec:
    """The spec ``mutation`` turns ``spec`` into (what :func:`edgenas.evolve.mutations.apply_mutation` builds)."""
    if mutation.kind == "grow":
        width = spec.stem_channels if mutation.where == 0 else spec.blocks[mutation.where - 1].out
        blocks = list(spec.blocks)
        blocks.insert(mutation.where, BlockSpec(width, mutation.width, 1))
        return dataclasses.replace(spec, blocks=tuple(blocks))
    if mutation.kind == "widen_hidden":
        blocks = list(spec.blocks)
        blocks[mutation.where] = dataclasses.replace(blocks[mutation.where], hidden=mutation.width)
        return dataclasses.replace(spec, blocks=tuple(blocks))
    positions = [t for t, g in enumerate(spec.groups()) if g == mutation.where]
    blocks = [dataclasses.replace(b, out=mutation.width) if i + 1 in positions else b
              for i, b in enumerate(spec.blocks)]
    return dataclasses.replace(spec, stem_channels=mutation.width if 0 in positions else spec.stem_channels,
                               blocks=tuple(blocks))
