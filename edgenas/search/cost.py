"""Size and compute of networks of the cell space, before and after derivation.

A :class:`CostModel` holds, for every cell, edge and candidate op, the op's
parameters and MACs at that position (channels, stride, input size), measured
once with the profiler, plus the fixed cost of everything that is not a
searched op (stem, cell pre-processing, classifier). From it:

- the *expected* cost of the network the alphas will derive, differentiable in
  alpha (the budget term of the search loss);
- the exact cost of any genotype (cheap, for repairing a derived network that
  breaks the budget, and for checking up front that the budget can be met).

The SSL projector is not counted: it is dropped before deployment.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from edgenas.errors import BudgetError
from edgenas.models import build
from edgenas.profiler import count_macs, count_params
from edgenas.space.cells import edge_index, num_edges
from edgenas.space.ops import build_op
from edgenas.space.spec import ArchSpec, CellGenotype, Edge


@dataclass(frozen=True)
class Cost:
    params: int
    macs: int

    def within(self, max_params: int, max_macs: int) -> bool:
        return self.params <= max_params and self.macs <= max_macs


class CostModel:
    """Per-op cost tables of one supernet layout.

    Args:
        template: an ArchSpec fixing the layout (channels, cells, resolution, classes);
            its genotypes are only used to measure the fixed cost.
        op_names: candidate ops (K); ``zero`` costs nothing.
    """

    def __init__(self, template: ArchSpec, op_names: tuple[str, ...]) -> None:
        self.template = template
        self.op_names = op_names
        self.nodes = template.nodes
        cache = _OP_COSTS
        # tables[c] = ([E, K] params, [E, K] macs) for cell c
        self.tables: list[tuple[torch.Tensor, torch.Tensor]] = []
        size = template.resolution
        for reduction, C in template.cell_channels():
            E = num_edges(self.nodes)
            p = torch.zeros(E, len(op_names), dtype=torch.float64)
            m = torch.zeros_like(p)
            for i in range(self.nodes):
                for j in range(i + 2):
                    stride = 2 if reduction and j < 2 else 1
                    in_size = size if j < 2 else size // (2 if reduction else 1)
                    for k, name in enumerate(op_names):
                        key = (name, C, stride, in_size)
                        if key not in cache:
                            cache[key] = _op_cost(name, C, stride, in_size)
                        p[edge_index(i, j), k], m[edge_index(i, j), k] = cache[key]
            self.tables.append((p, m))
            if reduction:
                size //= 2
        whole = self._profile(template)
        ops = self._ops_cost(template)
        self.fixed = Cost(whole.params - ops.params, whole.macs - ops.macs)

    @staticmethod
    def _profile(spec: ArchSpec) -> Cost:
        with torch.device("meta"):  # counted from shapes: nothing is allocated or computed
            net = build(dataclasses.replace(spec, projector=()))
        return Cost(count_params(net), count_macs(net, spec.resolution, spec.in_channels))

    def _ops_cost(self, spec: ArchSpec) -> Cost:
        params = macs = 0.0
        for c, (reduction, _) in enumerate(spec.cell_channels()):
            genotype = spec.reduce if reduction else spec.normal
            p, m = self.tables[c]
            for i, node in enumerate(genotype.nodes):
                for e in node:
                    k = self.op_names.index(e.op)
                    params += float(p[edge_index(i, e.input), k])
                    macs += float(m[edge_index(i, e.input), k])
        return Cost(int(round(params)), int(round(macs)))

    def genotype_cost(self, normal: CellGenotype, reduce: CellGenotype) -> Cost:
        """Exact params/MACs of the deployable network with these genotypes."""
        spec = dataclasses.replace(self.template, normal=normal, reduce=reduce)
        ops = self._ops_cost(spec)
        return Cost(self.fixed.params + ops.params, self.fixed.macs + ops.macs)

    def expected(self, w_normal: torch.Tensor, w_reduce: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected (params, MACs) under the op distributions ``w_* [E, K]`` (differentiable).

        Each node keeps 2 of its ``i + 2`` input edges, so an edge counts with
        weight ``2 / (i + 2)``: the expectation when edges are kept uniformly.
        """
        edge_weight = torch.tensor([min(2, i + 2) / (i + 2) for i in range(self.nodes) for _ in range(i + 2)],
                                   dtype=torch.float64, device=w_normal.device)
        params = torch.tensor(float(self.fixed.params), dtype=torch.float64, device=w_normal.device)
        macs = torch.tensor(float(self.fixed.macs), dtype=torch.float64, device=w_normal.device)
        for c, (reduction, _) in enumerate(self.template.cell_channels()):
            w = (w_reduce if reduction else w_normal).double()
            p, m = self.tables[c]
            params = params + (edge_weight[:, None] * w * p.to(w.device)).sum()
            macs = macs + (edge_weight[:, None] * w * m.to(w.device)).sum()
        return params, macs

    def uniform_expected(self) -> Cost:
        """The expected cost when every op but ``zero`` is equally likely on every edge (before any search)."""
        w = torch.tensor([0.0 if name == "zero" else 1.0 for name in self.op_names], dtype=torch.float64)
        w = (w / w.sum()).expand(num_edges(self.nodes), -1)
        params, macs = self.expected(w, w)
        return Cost(int(round(float(params))), int(round(float(macs))))

    def cheapest(self, max_params: int, max_macs: int) -> tuple[CellGenotype, CellGenotype, Cost]:
        """The genotypes of the network of least normalised cost (each node: 2 edges)."""
        kinds = [self.template.cell_channels()[c][0] for c in range(len(self.tables))]

        def per_kind(reduction: bool) -> CellGenotype:
            nodes = []
            for i in range(self.nodes):
                options = []
                for j in range(i + 2):
                    best = None
                    for k, name in enumerate(self.op_names):
                        if name == "zero":
                            continue
                        score = sum(
                            float(self.tables[c][0][edge_index(i, j), k]) / max_params
                            + float(self.tables[c][1][edge_index(i, j), k]) / max_macs
                            for c in range(len(self.tables)) if kinds[c] == reduction
                        )
                        if best is None or score < best[0]:
                            best = (score, name)
                    options.append((best[0], j, best[1]))
                kept = sorted(options)[: min(2, i + 2)]
                nodes.append(tuple(Edge(op, j) for _, j, op in sorted(kept, key=lambda t: t[1])))
            return CellGenotype(tuple(nodes))

        normal, reduce = per_kind(False), per_kind(True)
        return normal, reduce, self.genotype_cost(normal, reduce)


#: (op, C, stride, input side) -> (params, MACs): an op's cost depends on nothing else, so every cost model of a
#: process shares these (choosing a layout builds many)
_OP_COSTS: dict[tuple[str, int, int, int], tuple[int, int]] = {}


def _op_cost(name: str, C: int, stride: int, size: int) -> tuple[int, int]:
    if name == "zero":
        return 0, 0
    with torch.device("meta"):
        op = build_op(name, C, stride, affine=True)
    return count_params(op), count_macs(op, (1, C, size, size))


class LatencyModel:
    """Expected and exact latency of networks of one supernet layout, from a device's latency table.

    The table's calibrated law, ``a * sum(net_ms) + b * blocks + c`` (see
    :mod:`bench.latency_table`), is linear in the blocks, so its expectation under the op
    distributions is the same law over alpha-softmax-weighted table entries:
    differentiable, like :meth:`CostModel.expected`. The exact latency of a
    genotype is :meth:`bench.latency_table.LatencyTable.predict` of its keys.

    Raises (constructor):
        MissingEntryError: the table lacks a block this layout can hold.
    """

    def __init__(self, template: ArchSpec, op_names: tuple[str, ...], table) -> None:
        from edgenas.latency.keys import BlockKey
        from edgenas.latency.spaces import arch_keys

        self.template, self.op_names, self.table = template, op_names, table
        cal = table.calibration or {"a": 1.0, "b": 0.0, "c": 0.0}
        self.a, self.b, self.c = float(cal["a"]), float(cal["b"]), float(cal["c"])
        self.nodes = template.nodes
        # fixed blocks (stem, pre-processing, head) and the number of blocks, the same for every genotype
        keys = arch_keys(template)
        op_keys = [k for k in keys if k.startswith("op/")]
        self.fixed_ms, self.blocks = table.raw_sum([k for k in keys if not k.startswith("op/")])
        self.blocks += len(op_keys)
        self.tables: list[torch.Tensor] = []
        size = template.resolution
        for reduction, C in template.cell_channels():
            t = torch.zeros(num_edges(self.nodes), len(op_names), dtype=torch.float64)
            out = size // 2 if reduction else size
            for i in range(self.nodes):
                for j in range(i + 2):
                    stride = 2 if reduction and j < 2 else 1
                    for k, name in enumerate(op_names):
                        if name != "zero":
                            key = BlockKey.op(name, C, stride, size if j < 2 else out)
                            t[edge_index(i, j), k] = table.raw_sum([str(key)])[0]
            self.tables.append(t)
            size = out

    def expected(self, w_normal: torch.Tensor, w_reduce: torch.Tensor) -> torch.Tensor:
        """Expected latency (ms) under the op distributions ``w_* [E, K]`` (differentiable)."""
        edge_weight = torch.tensor([min(2, i + 2) / (i + 2) for i in range(self.nodes) for _ in range(i + 2)],
                                   dtype=torch.float64, device=w_normal.device)
        total = torch.tensor(self.fixed_ms, dtype=torch.float64, device=w_normal.device)
        for c, (reduction, _) in enumerate(self.template.cell_channels()):
            w = (w_reduce if reduction else w_normal).double()
            total = total + (edge_weight[:, None] * w * self.tables[c].to(w.device)).sum()
        return self.a * total + self.b * self.blocks + self.c

    def genotype_latency(self, normal: CellGenotype, reduce: CellGenotype) -> float:
        """Predicted latency (ms) of the deployable network with these genotypes."""
        from edgenas.latency.spaces import arch_keys

        return self.table.predict(arch_keys(dataclasses.replace(self.template, normal=normal, reduce=reduce)))

    def fastest(self) -> tuple[CellGenotype, CellGenotype, float]:
        """The genotypes of least predicted latency (each node: its 2 cheapest input edges)."""
        kinds = [reduction for reduction, _ in self.template.cell_channels()]

        def per_kind(reduction: bool) -> CellGenotype:
            nodes = []
            for i in range(self.nodes):
                options = []
                for j in range(i + 2):
                    best = min((sum(float(self.tables[c][edge_index(i, j), k]) for c in range(len(kinds))
                                    if kinds[c] == reduction), name)
                               for k, name in enumerate(self.op_names) if name != "zero")
                    options.append((best[0], j, best[1]))
                kept = sorted(options)[: min(2, i + 2)]
                nodes.append(tuple(Edge(op, j) for _, j, op in sorted(kept, key=lambda t: t[1])))
            return CellGenotype(tuple(nodes))

        normal, reduce = per_kind(False), per_kind(True)
        return normal, reduce, self.genotype_latency(normal, reduce)


def check_latency_feasible(model: LatencyModel, latency_ms: float, where: str) -> float:
    """Raise :class:`BudgetError` when even the fastest network of the space is predicted over budget."""
    _, _, fastest = model.fastest()
    if fastest > latency_ms:
        raise BudgetError(
            f"no network in this space meets {latency_ms:.4g} ms (--latency-ms less its margin) on {where}: "
            f"the fastest is predicted "
            f"at {fastest:.4f} ms; lower --channels/--cells/--resolution or raise --latency-ms"
        )
    return fastest


def check_feasible(model: CostModel, max_params: int, max_macs: int) -> Cost:
    """Raise :class:`BudgetError` when even the cheapest network of the space breaks the budget."""
    _, _, cost = model.cheapest(max_params, max_macs)
    if not cost.within(max_params, max_macs):
        raise BudgetError(
            f"no network in this space meets the budget: the smallest has {cost.params:,} params and "
            f"{cost.macs / 1e6:.1f}M MACs (budget {max_params:,} params, {max_macs / 1e6:.1f}M MACs); "
            "lower --channels/--cells/--resolution or raise --max-params/--max-macs"
        )
    return cost


def repair(model: CostModel, normal: CellGenotype, reduce: CellGenotype,
           w_normal: torch.Tensor, w_reduce: torch.Tensor, max_params: int, max_macs: int,
           latency: tuple[LatencyModel, float] | None = None
           ) -> tuple[CellGenotype, CellGenotype, list[str]]:
    """Make a derived genotype fit the budget with the least loss of architecture weight.

    Greedy: while over budget, apply the single change (a kept edge's op replaced by a
    cheaper op on the same edge) with the best ratio of budget saved to alpha weight
    given up. Returns the new genotypes and a log of the changes. ``latency``:
    ``(model, budget_ms)`` adds the predicted latency as a third budget.

    Raises:
        BudgetError: no sequence of such changes reaches the budget.
    """
    geno = {"normal": normal, "reduce": reduce}
    weights = {"normal": w_normal.detach().cpu(), "reduce": w_reduce.detach().cpu()}
    log: list[str] = []
    lat_model, max_ms = latency if latency is not None else (None, None)

    def lat(g) -> float:
        return lat_model.genotype_latency(g["normal"], g["reduce"]) if lat_model is not None else 0.0

    for _ in range(1000):
        cost = model.genotype_cost(geno["normal"], geno["reduce"])
        ms = lat(geno)
        if cost.within(max_params, max_macs) and (max_ms is None or ms <= max_ms):
            return geno["normal"], geno["reduce"], log
        best = None
        for kind in ("normal", "reduce"):
            for i, node in enumerate(geno[kind].nodes):
                for pos, e in enumerate(node):
                    for name in model.op_names:
                        if name in ("zero", e.op):
                            continue
                        trial = _swap(geno, kind, i, pos, Edge(name, e.input))
                        new = model.genotype_cost(trial["normal"], trial["reduce"])
                        saved = (max(cost.params - max_params, 0) and (cost.params - new.params) / max_params) + \
                                (max(cost.macs - max_macs, 0) and (cost.macs - new.macs) / max_macs)
                        if max_ms is not None and ms > max_ms:
                            saved += (ms - lat(trial)) / max_ms
                        if saved <= 0:
                            continue
                        w = weights[kind][edge_index(i, e.input)]
                        lost = float(w[model.op_names.index(e.op)] - w[model.op_names.index(name)])
                        score = max(lost, 1e-6) / saved
                        if best is None or score < best[0]:
                            best = (score, trial, f"{kind} node {i}: {e.op} -> {name} on input {e.input}")
        if best is None:
            break
        geno = best[1]
        log.append(best[2])
    cost = model.genotype_cost(geno["normal"], geno["reduce"])
    over_ms = f", {lat(geno):.4f} ms predicted vs {max_ms:g} ms" if max_ms is not None else ""
    raise BudgetError(
        f"the derived network cannot be brought within budget ({cost.params:,} params, "
        f"{cost.macs / 1e6:.1f}M MACs vs {max_params:,} / {max_macs / 1e6:.1f}M{over_ms})"
    )


def _swap(geno: dict[str, CellGenotype], kind: str, node: int, pos: int, edge: Edge) -> dict[str, CellGenotype]:
    nodes = list(geno[kind].nodes)
    edges = list(nodes[node])
    edges[pos] = edge
    nodes[node] = tuple(edges)
    return {**geno, kind: CellGenotype(tuple(nodes))}
