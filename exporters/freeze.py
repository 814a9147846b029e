"""Freeze a network for export: a deep copy in eval mode with batch norm folded into convolutions.

Folding ``y = BN(conv(x))`` into one convolution (Jacob et al., CVPR 2018,
arXiv:1712.05877, section 3.2) removes a memory pass per layer and is what every
runtime's INT8 path expects: a BN left on its own becomes a separately
quantized op. The pattern matching is torch's own FX pass
(``torch.fx.experimental.optimization.fuse``, which calls
``torch.nn.utils.fusion.fuse_conv_bn_eval``); modules like our DerivedNet keep
conv and BN as separate attributes, so only a graph-level pass sees the pairs.

Two extra patterns the FX pass does not know:

* ``BN(cat([conv_a(x), conv_b(y)], dim=1))`` (DARTS' factorized reduction). Each
  conv gets the BN slice of its own channels, again through ``fuse_conv_bn_eval``.
* ``BN(pool(conv(x)))`` (the stage space's and ``fast_cnn``'s conv-pool-BN, which
  normalises a quarter of the pixels when training). Eval-mode BN is a per-channel
  ``a * x + b``; an average pool commutes with it, and a max pool does when every
  ``a > 0`` (the usual case: ``max(a z + b) = a max(z) + b``). Left unfolded, the
  LiteRT INT8 export runs it as a float island (dequantize, sub, mul, mul, add,
  quantize): measured 17% of a 0.064 ms network's latency.

Once the BN is folded, ``relu(max_pool(conv(x)))`` becomes ``max_pool(relu(conv(x)))``
(a ReLU is monotone, so it commutes with a max): each runtime fuses the ReLU into the
conv, and the pool reads and writes one quantization range. Left after the pool, the
ReLU's range differs from the conv's and onnxruntime runs the INT8 pool in float.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.fx.experimental.optimization import fuse
from torch.nn.utils.fusion import fuse_conv_bn_eval

from exporters.errors import ConversionError

__all__ = ["FREEZE_REVISION", "freeze", "remaining_conv_bn"]

#: bumped when :func:`freeze` changes the graph a runtime times, so that latency tables measured before
#: can be told apart (2: batch norms folded through pools, ReLUs moved before max pools)
FREEZE_REVISION = 2

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def freeze(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with batch norm folded into the preceding convolutions.

    The input model is not modified (not even its train/eval flag). The result
    maps the same inputs to the same outputs as ``model.eval()`` (up to float
    rounding, ~1e-6) and holds no ``requires_grad`` parameters.

    Args:
        model: any FX-traceable ``nn.Module``, e.g. ``[N, C, H, W] float32 -> [N, classes]``.

    Returns:
        A ``torch.fx.GraphModule`` (an ``nn.Module``) in eval mode.

    Raises:
        ConversionError: the model cannot be traced symbolically (data-dependent control flow).
    """
    copied = copy.deepcopy(model).eval()
    try:
        traced = fx.symbolic_trace(copied)
    except (torch.fx.proxy.TraceError, TypeError, RuntimeError, NotImplementedError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"cannot trace {type(model).__name__} to fold batch norm: {first}") from None
    # inplace: `traced` is already our private copy; no_trace: it is already a graph.
    frozen = fuse(traced, inplace=True, no_trace=True)
    _fold_bn_after_cat(frozen)
    _fold_bn_after_pool(frozen)
    _relu_before_max_pool(frozen)
    frozen.eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def _single_user_conv(node: fx.Node, modules: dict[str, nn.Module]) -> nn.Module | None:
    if node.op != "call_module" or len(node.users) != 1:
        return None
    mod = modules[node.target]
    return mod if isinstance(mod, _CONV) else None


def _bn_slice(bn: nn.Module, start: int, stop: int) -> nn.Module:
    """A BatchNorm holding channels ``start:stop`` of ``bn`` (eval statistics only)."""
    part = type(bn)(stop - start, eps=bn.eps, affine=bn.affine, track_running_stats=True).eval()
    with torch.no_grad():
        part.running_mean.copy_(bn.running_mean[start:stop])
        part.running_var.copy_(bn.running_var[start:stop])
        if bn.affine:
            part.weight.copy_(bn.weight[start:stop])
            part.bias.copy_(bn.bias[start:stop])
    return part


def _fold_bn_after_cat(gm: fx.GraphModule) -> None:
    """Fold ``BN(cat([conv, conv, ...], dim=1))`` into the convs, in place on ``gm``."""
    modules = dict(gm.named_modules())
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], _BN):
            continue
        bn = modules[node.target]
        cat = node.args[0]
        if not (isinstance(cat, fx.Node) and cat.op == "call_function" and cat.target is torch.cat
                and len(cat.users) == 1 and bn.running_mean is not None):
            continue
        dim = cat.kwargs.get("dim", cat.args[1] if len(cat.args) > 1 else 0)
        parts = cat.args[0] if cat.args else cat.kwargs.get("tensors")
        if dim not in (1, -3) or not isinstance(parts, (list, tuple)):
            continue
        convs = [_single_user_conv(p, modules) if isinstance(p, fx.Node) else None for p in parts]
        if any(c is None for c in convs) or len({id(c) for c in convs}) != len(convs):
            continue
        if sum(c.out_channels for c in convs) != bn.num_features:
            continue
        start = 0
        for part, conv in zip(parts, convs, strict=True):
            stop = start + conv.out_channels
            fused = fuse_conv_bn_eval(conv, _bn_slice(bn, start, stop))
            _replace_module(gm, part.target, fused)
            start = stop
        node.replace_all_uses_with(cat)
        gm.graph.erase_node(node)
        changed = True
    _finish(gm, changed)


def _finish(gm: fx.GraphModule, changed: bool, drop_unused: bool = True) -> None:
    """Check and regenerate a rewritten graph (nothing when it did not change)."""
    if changed:
        gm.graph.lint()
        if drop_unused:
            gm.delete_all_unused_submodules()
        gm.recompile()


_POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d)
_POOL_FUNCTIONS = (torch.nn.functional.max_pool2d, torch.nn.functional.avg_pool2d)


def _is_max_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool | None:
    """True for a max pool, False for an average pool, None for anything else."""
    if node.op == "call_module" and isinstance(modules.get(node.target), _POOL_MODULES):
        return isinstance(modules[node.target], nn.MaxPool2d)
    if node.op == "call_function" and node.target in _POOL_FUNCTIONS:
        return node.target is torch.nn.functional.max_pool2d
    return None


def _fold_bn_after_pool(gm: fx.GraphModule) -> None:
    """Fold ``BN(pool(conv(x)))`` into the conv when the pool commutes with the BN, in place on ``gm``."""
    modules = dict(gm.named_modules())
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], nn.BatchNorm2d):
            continue
        bn, pool = modules[node.target], node.args[0]
        if not isinstance(pool, fx.Node) or len(pool.users) != 1 or bn.running_var is None:
            continue
        is_max = _is_max_pool(pool, modules)
        source = pool.args[0] if pool.args else None
        conv = _single_user_conv(source, modules) if is_max is not None and isinstance(source, fx.Node) else None
        if conv is None or not isinstance(conv, nn.Conv2d) or conv.out_channels != bn.num_features:
            continue
        scale = (bn.weight if bn.affine else torch.ones_like(bn.running_var)) / torch.sqrt(bn.running_var + bn.eps)
        if is_max and not bool((scale > 0).all()):
            continue  # a max pool does not commute with a negative scale: the BN stays
        _replace_module(gm, source.target, fuse_conv_bn_eval(conv, bn))
        node.replace_all_uses_with(pool)
        gm.graph.erase_node(node)
        changed = True
    _finish(gm, changed)


_RELU_FUNCTIONS = (torch.relu, torch.relu_, torch.nn.functional.relu)


def _is_relu(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules.get(node.target), nn.ReLU)
    return node.op == "call_function" and node.target in _RELU_FUNCTIONS


def _relu_before_max_pool(gm: fx.GraphModule) -> None:
    """Rewrite ``relu(max_pool(conv(x)))`` as ``max_pool(relu(conv(x)))``, in place on ``gm`` (same values)."""
    modules = dict(gm.named_modules())
    changed = False
    for relu in list(gm.graph.nodes):
        if not _is_relu(relu, modules) or not relu.args or relu.kwargs:
            continue
        pool = relu.args[0]
        if not (isinstance(pool, fx.Node) and len(pool.users) == 1 and _is_max_pool(pool, modules)
                and pool.args and isinstance(pool.args[0], fx.Node)
                and _single_user_conv(pool.args[0], modules) is not None):
            continue
        source = pool.args[0]
        relu.replace_all_uses_with(pool)
        relu.args = (source, *relu.args[1:])
        pool.args = (relu, *pool.args[1:])
        pool.prepend(relu)
        changed = True
    _finish(gm, changed, drop_unused=False)


def _replace_module(gm: fx.GraphModule, target: str, new: nn.Module) -> None:
    parent_name, _, name = target.rpartition(".")
    parent = gm.get_submodule(parent_name) if parent_name else gm
    setattr(parent, name, new)


def remaining_conv_bn(model: nn.Module) -> list[str]:
    """Names of batch norms whose input is directly a convolution (none after :func:`freeze`).

    Raises:
        ConversionError: the model cannot be traced.
    """
    try:
        gm = model if isinstance(model, fx.GraphModule) else fx.symbolic_trace(copy.deepcopy(model))
    except (torch.fx.proxy.TraceError, TypeError, RuntimeError, NotImplementedError) as exc:
        raise ConversionError(f"cannot trace {type(model).__name__}: {exc}") from None
    modules = dict(gm.named_modules())
    out = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and isinstance(modules[node.target], _BN):
            src = node.args[0]
            if isinstance(src, fx.Node) and src.op == "call_module" and isinstance(modules[src.target], _CONV):
                out.append(node.target)
    return out
