"""Random networks of the stage space, each scaled to fill the budgets: what the proxy strategy ranks.

A sample draws the shape of a network (2 to 4 stages, where the pools are, an optional
stem, each stage's kernel and residual pairs, widths growing by a random factor per stage),
then scales every width by the one factor that brings it to :data:`FILL` of its binding
budget (parameters, MACs, and a latency test when one is given), and widens single stages by
8 channels while both budgets still allow. Sampling at the budget,
not at random sizes, makes the ranking compare shapes, not sizes: every candidate is a
network one would deploy. Torch-free (costs are counted on the spec).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from edgenas.errors import BudgetError, ConfigError
from edgenas.space.stages import MAX_STAGES, Stage, StageSpec

__all__ = ["FILL", "fill_stages", "random_stages", "sample_stage_specs"]

#: the share of the binding budget every sampled network is scaled to (at most)
FILL = 0.9
#: the smallest feature map the pools may leave (a 32x32 input takes three pools)
MIN_SIDE = 4
#: attempts per requested sample before a budget is declared too small for the space
ATTEMPTS = 50


def random_stages(rng: random.Random, resolution: int = 32, num_classes: int = 10,
                  projector: tuple[int, ...] = ()) -> StageSpec:
    """One random shape of the stage space (widths before scaling to a budget)."""
    pools, side = 0, resolution
    while side % 2 == 0 and side // 2 >= MIN_SIDE:
        pools, side = pools + 1, side // 2
    n = rng.randint(2, min(4, MAX_STAGES))
    pooled = set(rng.sample(range(n), min(pools, n)))
    base = rng.choice((16, 24, 32, 48, 64))
    growth = rng.choice((1.25, 1.5, 2.0))
    stages = []
    for i in range(n):
        width = int(round(base * growth ** i / 8)) * 8 or 8
        stages.append(Stage(width=max(8, width), kernel=rng.choices((3, 5), (0.75, 0.25))[0], pool=i in pooled,
                            residual=rng.choices((0, 1, 2), (0.3, 0.5, 0.2))[0]))
    stem = max(8, int(round(base / 2 / 8)) * 8) if rng.random() < 0.3 else 0
    return StageSpec(stem_channels=stem, stages=tuple(stages), resolution=resolution, num_classes=num_classes,
                     projector=tuple(projector))


def fill_stages(spec: StageSpec, max_params: int, max_macs: int, fill: float = FILL,
                fits: Callable[[StageSpec], bool] | None = None) -> StageSpec | None:
    """``spec`` with its widths scaled by the largest factor that keeps it within ``fill`` of both budgets
    (and ``fits``, e.g. the predicted latency); None when even the narrowest widths do not fit."""

    def ok(factor: float) -> bool:
        candidate = spec.scaled(factor)
        params, macs = candidate.cost()
        return params <= fill * max_params and macs <= fill * max_macs and (fits is None or fits(candidate))

    lo, hi = 1 / 64, 64.0
    if not ok(lo):
        return None
    for _ in range(30):  # the cost grows with the factor (in steps: widths round to multiples of 8)
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return _widen_stages(spec.scaled(lo), max_params, max_macs, fill, fits)


def _widen_stages(spec: StageSpec, max_params: int, max_macs: int, fill: float,
                  fits: Callable[[StageSpec], bool] | None, step: int = 8) -> StageSpec:
    """Widen single stages by ``step`` while both budgets allow, the one that uses the most of the budgets
    first: the common factor stops at the first budget it meets (and at a step of 8 channels, a large
    share of a narrow network), and a late stage still has parameters to spend where an early one has no
    MACs left."""

    def share(candidate: StageSpec) -> float:
        params, macs = candidate.cost()
        return params / max_params + macs / max_macs

    def ok(candidate: StageSpec) -> bool:
        params, macs = candidate.cost()
        return params <= fill * max_params and macs <= fill * max_macs and (fits is None or fits(candidate))

    while True:
        options = [replace(spec, stages=spec.stages[:i] + (replace(s, width=s.width + step),) + spec.stages[i + 1:])
                   for i, s in enumerate(spec.stages)]
        options = [o for o in options if ok(o)]
        if not options:
            return spec
        spec = max(options, key=share)


def sample_stage_specs(n: int, seed: int, max_params: int, max_macs: int, resolution: int = 32,
                       num_classes: int = 10, projector: tuple[int, ...] = (), fill: float = FILL,
                       fits: Callable[[StageSpec], bool] | None = None) -> list[StageSpec]:
    """``n`` distinct random stage networks (seeded), each scaled to ``fill`` of its binding budget.

    Raises:
        ConfigError: ``n`` below 1.
        BudgetError: the budgets are too small for (almost) any network of the space.
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    rng = random.Random(seed)
    out: list[StageSpec] = []
    seen: set[str] = set()
    misses = 0
    while len(out) < n:
        spec = fill_stages(random_stages(rng, resolution, num_classes, projector), max_params, max_macs, fill, fits)
        if spec is None or spec.sha256() in seen:
            misses += 1
            if misses > ATTEMPTS * n:
                if not out:
                    raise BudgetError(f"no network of the stage space fits {max_params:,} parameters and "
                                      f"{max_macs:,} MACs at {resolution}x{resolution}"
                                      f"{' and the latency budget' if fits else ''}; raise the budgets")
                break
            continue
        seen.add(spec.sha256())
        out.append(spec)
    return out

