"""Reset the norms of scale-invariant weights, keeping the function: the start of a preserved fine-tuning.

A convolution whose only consumer is a batch norm is scale-invariant: ``w`` and
``s * w`` give the same network once the norm's running statistics are scaled
with it (``mean * s``, ``var * s**2``). Its gradient scales as ``1 / s``, so
SGD's effective step on the weight's direction is ``lr / ||w||**2`` (van
Laarhoven 2017; Hoffer et al. 2018). A self-supervised search grows these norms
(the stem of a CIFAR-10 search ended at 3.5x its initial norm), which shrinks
the fine-tuning's effective learning rate by 10x or more in exactly the layers
the search trained most. Rescaling each such weight back to the norm of a fresh
initialisation keeps every learned direction and the network's outputs, and
gives the fine-tuning the step size a random start gets.
"""

from __future__ import annotations

import torch
from torch import fx, nn

__all__ = ["reset_weight_norms", "scale_invariant_convs"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _conv_of(node, modules: dict[str, nn.Module]) -> str | None:
    if isinstance(node, fx.Node) and node.op == "call_module" and len(node.users) == 1 \
            and isinstance(modules[node.target], _CONV):
        return node.target
    return None


def scale_invariant_convs(model: nn.Module) -> list[tuple[str, str, int]]:
    """``(conv, batch_norm, first_channel)`` for every convolution whose output only feeds a batch norm.

    The norm may take the convolution directly, or a channel concatenation of
    several such convolutions (DARTS' factorized reduction); ``first_channel`` is
    where the convolution's channels start in the norm. A model that torch.fx
    cannot trace has none (nothing is rescaled).
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except (fx.proxy.TraceError, TypeError, RuntimeError, NotImplementedError):
        return []
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _BN) or not node.args:
            continue
        src = node.args[0]
        conv = _conv_of(src, modules)
        if conv is not None:
            pairs.append((conv, node.target, 0))
            continue
        if not (isinstance(src, fx.Node) and src.op == "call_function" and src.target is torch.cat
                and len(src.users) == 1):
            continue
        parts = src.args[0] if src.args else src.kwargs.get("tensors", ())
        dim = src.kwargs.get("dim", src.args[1] if len(src.args) > 1 else 0)
        convs = [_conv_of(p, modules) for p in parts]
        if dim not in (1, -3) or not convs or None in convs or len(set(convs)) != len(convs):
            continue
        start = 0
        for conv in convs:
            pairs.append((conv, node.target, start))
            start += modules[conv].out_channels
    return pairs


@torch.no_grad()
def reset_weight_norms(model: nn.Module, reference: nn.Module) -> dict[str, float]:
    """Rescale ``model``'s scale-invariant convolutions to the norms of ``reference``'s, in place.

    ``reference`` is the same architecture freshly initialised. The batch norms'
    running statistics are scaled with their convolutions, so the network
    computes the same function in train and eval mode (up to the norms' eps).

    Returns:
        ``{conv name: scale applied}`` (a scale below 1 means the weight had grown).
    """
    own = dict(model.named_modules())
    ref = dict(reference.named_modules())
    scales = {}
    for conv_name, bn_name, start in scale_invariant_convs(model):
        conv, bn = own[conv_name], own[bn_name]
        if conv_name not in ref or bn.running_mean is None:
            continue
        norm = conv.weight.norm()
        if not norm > 0:
            continue
        s = float(ref[conv_name].weight.norm() / norm)
        conv.weight.mul_(s)
        if conv.bias is not None:
            conv.bias.mul_(s)
        stop = start + conv.out_channels
        bn.running_mean[start:stop] *= s
        bn.running_var[start:stop] *= s * s
        scales[conv_name] = s
    return scales
