"""The size of the space a search runs in, chosen from the budgets: search at the size you deploy.

Without ``--channels``/``--cells``, :func:`choose_layout` picks the largest
layout (channels ``C`` of the first cells, and the number of cells) whose
*expected* derived network, every op but ``zero`` equally likely on every
edge, uses at most :data:`FILL` of each budget (parameters, MACs, and the
target's predicted latency when ``--latency-ms`` is given and its table
covers the layout). The search then runs at that size, and the network it
derives is the one it deploys, with the weights it learned (a sampled
supernet makes that affordable: :mod:`edgenas.space.network`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from edgenas.errors import BudgetError
from edgenas.latency.keys import Layout
from edgenas.search.cost import Cost, CostModel
from edgenas.space.spec import CellGenotype, Edge

__all__ = ["CELL_CHOICES", "FILL", "LayoutChoice", "choose_layout"]

#: the share of each budget the expected network may use: the derived one varies around it (the budget term
#: of the search pulls it in, the repair trims what is left over)
FILL = 0.9
#: the depths tried when ``--cells`` is not given (reductions at 1/3 and 2/3 of the depth)
CELL_CHOICES = (5, 8)
#: the widths tried: every even C in this range
C_RANGE = (4, 512)


@dataclass(frozen=True)
class LayoutChoice:
    """The chosen layout and the expected size of its network (shares of each budget in ``share``)."""

    channels: int
    cells: int
    expected: Cost
    share: dict[str, float]
    chosen: bool  # False when --channels and --cells were both given

    def to_dict(self) -> dict:
        return {"channels": self.channels, "cells": self.cells, "expected_params": self.expected.params,
                "expected_macs": self.expected.macs, "share": {k: round(v, 4) for k, v in self.share.items()},
                "chosen_from_budgets": self.chosen}


def _model(C: int, cells: int, nodes: int, stem_multiplier: int, resolution: int, num_classes: int,
           ops: Sequence[str]) -> CostModel:
    g = CellGenotype(tuple((Edge("identity", 0), Edge("identity", 1)) for _ in range(nodes)))
    layout = Layout(channels=C, cells=cells, nodes=nodes, resolution=resolution, stem_multiplier=stem_multiplier,
                    num_classes=num_classes)
    return CostModel(layout.template(g, g), tuple(ops))


def _shares(cost: Cost, max_params: int, max_macs: int) -> dict[str, float]:
    return {"params": cost.params / max_params, "macs": cost.macs / max_macs}


def choose_layout(cfg, num_classes: int) -> LayoutChoice:
    """The layout of ``cfg``: its ``--channels``/``--cells`` where given, the rest chosen from the budgets.

    Among the depths :data:`CELL_CHOICES` (or ``--cells``), the widest even ``C`` (or ``--channels``)
    whose expected network fits :data:`FILL` of every budget; of those, the one that uses the most of
    its binding budget, the shallower on a tie within 2%.

    Raises:
        BudgetError: even the narrowest layout's expected network breaks a budget.
    """
    def fits(cost: Cost) -> bool:
        return max(_shares(cost, cfg.max_params, cfg.max_macs).values()) <= FILL

    def model(C: int, cells: int) -> CostModel:
        return _model(C, cells, cfg.nodes, cfg.stem_multiplier, cfg.resolution, num_classes, cfg.ops)

    divisor = 2 ** 2  # two reductions halve the map twice
    depths = (cfg.cells,) if cfg.cells else tuple(c for c in CELL_CHOICES if cfg.resolution % divisor == 0) or (3,)
    options = []
    for cells in depths:
        if cfg.channels:
            C = cfg.channels
        else:
            lo, hi = C_RANGE[0] // 2, C_RANGE[1] // 2  # search over C / 2: C stays even
            if not fits(model(2 * lo, cells).uniform_expected()):
                continue
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits(model(2 * mid, cells).uniform_expected()):
                    lo = mid
                else:
                    hi = mid - 1
            C = 2 * lo
        cost = model(C, cells).uniform_expected()
        options.append((max(_shares(cost, cfg.max_params, cfg.max_macs).values()), cells, C, cost))
    if not options:
        raise BudgetError(f"no layout of this space meets the budget ({cfg.max_params:,} params, "
                          f"{cfg.max_macs / 1e6:.1f}M MACs at {cfg.resolution} px) even at C={C_RANGE[0]}: "
                          "raise --max-params/--max-macs or lower --resolution")
    best = max(options, key=lambda o: o[0])
    share, cells, C, cost = min((o for o in options if o[0] >= best[0] - 0.02), key=lambda o: o[1])
    return LayoutChoice(C, cells, cost, _shares(cost, cfg.max_params, cfg.max_macs),
                        chosen=not (cfg.channels and cfg.cells))
