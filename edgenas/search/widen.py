"""Function-preserving widening of a derived network: fill the budget the derivation left unused.

A search derives the ops its alphas prefer; cheap ones (identity, pooling) often
win, so the derived network can end well under its budgets. :func:`fill_budget`
finds the widest ``C`` of the same genotype that still fits every budget, and
:func:`widen` moves the trained weights into it so that the wider network
computes exactly what the narrow one did (Net2Net's goal, Chen et al. ICLR 2016,
by another route): every old channel keeps its weights and statistics, every new
channel starts from a fresh initialisation, and every weight from a new channel
into an old one is zero. New channels therefore change nothing until training
moves those weights; they are not dead (their own inputs are random), so
fine-tuning uses the extra width.

Channel layouts: every ``C``-wide tensor of a cell keeps its old channels at
``[0, C/2)`` and ``[C'/2, C'/2 + C/2)`` (the two halves a factorized reduction
concatenates), a cell's output is its nodes' tensors concatenated, and hidden
widths inside an op (expansions, squeeze-excite) keep theirs first.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from edgenas.errors import ArchSpecError, EdgenasError
from edgenas.space.ops import (
    ConvBN,
    DepthwiseSeparable,
    FactorizedReduce,
    InvertedResidual,
    PoolBN,
    PooledSE,
    ResidualConvPair,
    SqueezeExcite,
    Zero,
)
from edgenas.space.spec import ArchSpec

__all__ = ["WidenError", "fill_budget", "widen"]


class WidenError(EdgenasError):
    """A network edgenas does not know how to widen (an op from a plugin)."""


def _halves(c: int, c_new: int) -> torch.Tensor:
    """Old channels of a cell tensor: the first half of each half (factorized reduction's layout)."""
    return torch.cat([torch.arange(c // 2), c_new // 2 + torch.arange(c // 2)])


def _prefix(c: int) -> torch.Tensor:
    return torch.arange(c)


def _concat(blocks: list[tuple[torch.Tensor, int]]) -> torch.Tensor:
    """Old channels of a concatenation of blocks ``(old indices in the block, new block width)``."""
    out, offset = [], 0
    for idx, width in blocks:
        out.append(idx + offset)
        offset += width
    return torch.cat(out)


@torch.no_grad()
def _weight(new: nn.Module, old: nn.Module, in_idx: torch.Tensor | None, out_idx: torch.Tensor) -> None:
    """Copy a conv or linear layer: old weights at ``[out_idx, in_idx]``, zero from new inputs into old outputs."""
    w_new, w_old = new.weight, old.weight
    depthwise = isinstance(new, nn.Conv2d) and new.groups > 1
    if depthwise:
        if new.groups != new.in_channels or new.groups != new.out_channels:
            raise WidenError(f"cannot widen a grouped conv that is not depthwise ({new})")
        w_new[out_idx] = w_old
    else:
        rows = w_new[out_idx]
        rows.zero_()  # every new input column of an old output row is zero: old outputs unchanged
        rows[:, in_idx] = w_old
        w_new[out_idx] = rows
    if getattr(new, "bias", None) is not None:
        new.bias[out_idx] = old.bias


@torch.no_grad()
def _norm(new: nn.Module, old: nn.Module, idx: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        target, source = getattr(new, name, None), getattr(old, name, None)
        if target is not None and source is not None:
            target[idx] = source
    if getattr(old, "num_batches_tracked", None) is not None:
        new.num_batches_tracked.copy_(old.num_batches_tracked)


def _se(new: SqueezeExcite, old: SqueezeExcite, idx: torch.Tensor) -> None:
    hidden = _prefix(old.reduce.out_channels)
    _weight(new.reduce, old.reduce, idx, hidden)
    _weight(new.expand, old.expand, hidden, idx)


def _fr(new: FactorizedReduce, old: FactorizedReduce, in_idx: torch.Tensor, out_idx: torch.Tensor) -> None:
    half = _prefix(old.conv_1.out_channels)
    _weight(new.conv_1, old.conv_1, in_idx, half)
    _weight(new.conv_2, old.conv_2, in_idx, half)
    _norm(new.bn, old.bn, out_idx)


def _op(new: nn.Module, old: nn.Module, idx: torch.Tensor) -> None:
    """Widen one cell op (``C -> C`` at any stride; ``idx``: old channels of its input and output)."""
    kind = type(old)
    if kind in (nn.Identity, Zero):
        return
    if kind is FactorizedReduce:
        _fr(new, old, idx, idx)
    elif kind is ConvBN:
        _weight(new.conv, old.conv, idx, idx)
        _norm(new.bn, old.bn, idx)
    elif kind is DepthwiseSeparable:
        _weight(new.dw, old.dw, None, idx)
        _norm(new.bn_dw, old.bn_dw, idx)
        if isinstance(old.se, SqueezeExcite):
            _se(new.se, old.se, idx)
        _weight(new.pw, old.pw, idx, idx)
        _norm(new.bn_pw, old.bn_pw, idx)
    elif kind is InvertedResidual:
        hidden = _prefix(old.expand.out_channels)
        _weight(new.expand, old.expand, idx, hidden)
        _norm(new.bn_expand, old.bn_expand, hidden)
        _weight(new.dw, old.dw, None, hidden)
        _norm(new.bn_dw, old.bn_dw, hidden)
        _weight(new.project, old.project, hidden, idx)
        _norm(new.bn_project, old.bn_project, idx)
    elif kind is PooledSE:
        _se(new.se, old.se, idx)
    elif kind is ResidualConvPair:
        _weight(new.conv1, old.conv1, idx, idx)
        _norm(new.bn1, old.bn1, idx)
        _weight(new.conv2, old.conv2, idx, idx)
        _norm(new.bn2, old.bn2, idx)
        _op(new.skip, old.skip, idx)
    elif kind is PoolBN:
        _norm(new.bn, old.bn, idx)
    else:
        raise WidenError(f"cannot widen op {kind.__name__} (an op from a plugin?): the network keeps its width")


def widened_spec(spec: ArchSpec, channels: int) -> ArchSpec:
    """``spec`` at ``channels`` (even), the stem scaled in proportion (rounded to an even number)."""
    stem = max(2, int(round(spec.stem_channels * channels / spec.channels / 2)) * 2)
    return dataclasses.replace(spec, channels=channels, stem_channels=stem)


def widen(net: nn.Module, spec: ArchSpec, channels: int, seed: int = 0):
    """The network of ``spec`` at width ``channels`` computing what ``net`` computes (new channels fresh).

    Returns:
        ``(wide network, its spec)``; in eval and in train mode its outputs equal ``net``'s.

    Raises:
        WidenError: ``channels`` is not wider and even, or the network holds an op this does not know.
    """
    from edgenas.models import build

    if channels < spec.channels or channels % 2:
        raise WidenError(f"cannot widen from C={spec.channels} to C={channels} (it must be even and not smaller)")
    wide_spec = widened_spec(spec, channels)
    torch.manual_seed(seed)
    wide = build(wide_spec)
    stem_idx = _prefix(spec.stem_channels)
    _weight(wide.stem[0], net.stem[0], _prefix(spec.in_channels), stem_idx)
    _norm(wide.stem[1], net.stem[1], stem_idx)
    layouts = [(stem_idx, wide_spec.stem_channels), (stem_idx, wide_spec.stem_channels)]  # (old idx, width) of s0, s1
    for (_, C), (_, C_new), old_cell, new_cell in zip(spec.cell_channels(), wide_spec.cell_channels(), net.cells,
                                                      wide.cells):
        idx = _halves(C, C_new)
        (in0, _), (in1, _) = layouts
        if isinstance(old_cell.pre0, FactorizedReduce):
            _fr(new_cell.pre0, old_cell.pre0, in0, idx)
        else:
            _op_pre(new_cell.pre0, old_cell.pre0, in0, idx)
        _op_pre(new_cell.pre1, old_cell.pre1, in1, idx)
        for key, op in old_cell.edges.items():
            _op(new_cell.edges[key], op, idx)
        out = _concat([(idx, C_new)] * spec.nodes)
        layouts = [layouts[1], (out, spec.nodes * C_new)]
    features = layouts[1][0]
    if net.classifier is not None:
        _weight(wide.classifier, net.classifier, features, _prefix(net.classifier.out_features))
    if net.projector is not None and wide.projector is not None:
        old_layers, new_layers = list(net.projector), list(wide.projector)
        _weight(new_layers[0], old_layers[0], features, _prefix(old_layers[0].out_features))
        wide.projector.load_state_dict({k: v for k, v in net.projector.state_dict().items()
                                        if not k.startswith("0.")}, strict=False)
    return wide, wide_spec


def _op_pre(new: ConvBN, old: ConvBN, in_idx: torch.Tensor, out_idx: torch.Tensor) -> None:
    _weight(new.conv, old.conv, in_idx, out_idx)
    _norm(new.bn, old.bn, out_idx)


def fill_budget(spec: ArchSpec, max_params: int, max_macs: int, fits=None, limit: int = 1024,
                least: int | None = None) -> int:
    """The widest even ``C`` of this genotype within ``max_params`` and ``max_macs`` (and ``fits``).

    Args:
        fits: an extra test ``spec -> bool`` (the predicted latency within its budget).
        least: the narrowest width to consider (default: the spec's own: widening only); when even
            that does not fit, ``least`` is returned.
    """
    from edgenas.models import build
    from edgenas.profiler import count_macs, count_params

    def ok(C: int) -> bool:
        candidate = widened_spec(spec, C)
        deploy = dataclasses.replace(candidate, projector=())
        try:
            with torch.device("meta"):
                model = build(deploy)
        except ArchSpecError:  # beyond what edgenas builds at all
            return False
        within = count_params(model) <= max_params and count_macs(model, spec.resolution) <= max_macs
        return within and (fits is None or fits(candidate))

    least = spec.channels if least is None else least
    lo, hi = max(1, least // 2), limit // 2
    if not ok(2 * lo):
        return 2 * lo
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(2 * mid):
            lo = mid
        else:
            hi = mid - 1
    return 2 * lo
