"""Mixed ops and cells: the continuous relaxation of DARTS (Liu et al., ICLR 2019).

A :class:`SearchCell` holds a :class:`MixedOp` on every edge ``j -> i`` between
its states; a node sums its incoming edges, each edge a softmax(alpha)-weighted
sum of the candidate ops. A :class:`DerivedCell` keeps the chosen edges only,
with the same module names, so that the supernet's weights load into it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from edgenas.space.ops import ConvBN, FactorizedReduce, build_op
from edgenas.space.spec import CellGenotype


def num_edges(nodes: int) -> int:
    """Edges of a cell with ``nodes`` intermediate nodes: node i has i + 2 inputs."""
    return sum(i + 2 for i in range(nodes))


def edge_index(node: int, input_state: int) -> int:
    """Flat index of edge ``input_state -> node`` (the row of alpha)."""
    return sum(i + 2 for i in range(node)) + input_state


class MixedOp(nn.Module):
    """Weighted sum of candidate ops: ``sum_k w_k * op_k(x)``; ``zero`` is never computed.

    With ``sampled``, ``weights`` is one-hot valued (a sampled path, straight-through:
    its gradient reaches every alpha) and only the chosen op runs: ``w_k * op_k(x)``.

    Shapes: ``x [B, C, H, W]``, ``weights [K]`` -> ``[B, C, H/s, W/s]``.
    """

    def __init__(self, op_names: Sequence[str], C: int, stride: int) -> None:
        super().__init__()
        self.op_names = tuple(op_names)
        self.stride = stride
        self.ops = nn.ModuleList(build_op(name, C, stride, affine=False) for name in self.op_names)

    def forward(self, x: torch.Tensor, weights: torch.Tensor, sampled: bool = False) -> torch.Tensor:
        if sampled:
            k = int(weights.detach().argmax())
            if not weights.requires_grad:  # a weights step: the path's weight is 1 and nothing flows to alpha
                return self.ops[k](x)
            return self.ops[k](x) * weights[k]  # weight 1 forward; its gradient is the path's
        out = None
        for name, w, op in zip(self.op_names, weights, self.ops):
            if name == "zero":
                continue
            y = w * op(x)
            out = y if out is None else out + y
        if out is None:  # only 'zero' candidates
            return self.ops[0](x)
        return out


def _preprocess(C_pp: int, C_p: int, C: int, reduction_prev: bool, affine: bool) -> tuple[nn.Module, nn.Module]:
    pre0 = FactorizedReduce(C_pp, C, affine) if reduction_prev else ConvBN(C_pp, C, 1, 1, affine)
    return pre0, ConvBN(C_p, C, 1, 1, affine)


def _called(module: nn.Module, *args):
    return module(*args)


@contextmanager
def _norm_statistics_frozen(module: nn.Module) -> Iterator[None]:
    """Batch norms of ``module`` still normalise by the batch but leave their running statistics and batch count
    as they were: a recomputed forward must not count the batch a second time. (Momentum 0 rather than no
    tracking: the recomputation must save the same tensors as the forward.)"""
    norms = [(m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone())
             for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m, _, _ in norms:
        m.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, momentum, count in norms:
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


def _checkpointed(module: nn.Module, *args):
    from torch.utils.checkpoint import checkpoint

    return checkpoint(module, *args, use_reentrant=False,
                      context_fn=lambda: (nullcontext(), _norm_statistics_frozen(module)))


class SearchCell(nn.Module):
    """A DARTS cell over all edges; ``forward(s0, s1, weights[E, K])``.

    Inputs ``s0`` (cell k-2, ``C_pp`` channels) and ``s1`` (cell k-1, ``C_p``);
    output ``[B, nodes * C, H', W']``, H' = H/2 in a reduction cell.
    """

    def __init__(self, op_names: Sequence[str], nodes: int, C_pp: int, C_p: int, C: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.pre0, self.pre1 = _preprocess(C_pp, C_p, C, reduction_prev, affine=False)
        self.edges = nn.ModuleList()
        for i in range(nodes):
            for j in range(i + 2):
                stride = 2 if reduction and j < 2 else 1
                self.edges.append(MixedOp(op_names, C, stride))

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor, sampled: bool = False,
                recompute: bool = False) -> torch.Tensor:
        """``recompute``: keep only each edge's input and output and run its op again in the backward pass
        (activation checkpointing)."""
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        run = _checkpointed if recompute and torch.is_grad_enabled() else _called
        for _ in range(self.nodes):
            s = sum(run(self.edges[offset + j], h, weights[offset + j], sampled) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return torch.cat(states[2:], dim=1)


class DerivedCell(nn.Module):
    """The discrete cell of a genotype. Module names mirror :class:`SearchCell`:
    ``edges.<flat edge index>`` holds the kept op, so supernet weights map 1:1.
    """

    def __init__(self, genotype: CellGenotype, C_pp: int, C_p: int, C: int,
                 reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.genotype = genotype
        self.pre0, self.pre1 = _preprocess(C_pp, C_p, C, reduction_prev, affine=True)
        self.edges = nn.ModuleDict()
        for i, node in enumerate(genotype.nodes):
            for e in node:
                stride = 2 if reduction and e.input < 2 else 1
                self.edges[str(edge_index(i, e.input))] = build_op(e.op, C, stride, affine=True)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for i, node in enumerate(self.genotype.nodes):
            states.append(sum(self.edges[str(edge_index(i, e.input))](states[e.input]) for e in node))
        return torch.cat(states[2:], dim=1)
