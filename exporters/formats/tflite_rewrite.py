"""Graph rewrites for the TFLite converter, so that XNNPACK runs the whole model (exact, FP32 and INT8).

XNNPACK (LiteRT's CPU delegate) runs some ops only in float (HARD_SWISH,
AVERAGE_POOL_2D, RELU); any op it does not take splits the graph into
partitions, and every split cost far more than the op itself (the searched
model's INT8: 0.61 ms in 3 partitions, 0.25 ms in one; FP32: 0.28 ms).
What the first INT8 exports looked like, and the fix for each (measured on the
searched model and MobileNetV3-Small, 1 thread; figures in the README):

* ``AvgPool2d(k, s, p, count_include_pad=False)`` with ``p > 0`` has no TFLite
  op (TF's SAME padding is asymmetric): litert-torch lowered it to
  ``STABLEHLO_REDUCE_WINDOW`` + ``DIV``, outside XNNPACK (FP32 3.2x slower),
  and the INT8 conversion failed ("'tfl.pad' op quantization parameters violate
  the same scale constraint"). :func:`rewrite_avg_pools`: the exact
  ``avg_pool(count_include_pad=True) * (k*k / count)``; for INT8 the pool is a
  depthwise conv with weights ``1/(k*k)``.
* A dynamic batch: pooled flatten becomes a mean and DARTS' offset slice a 2x2 conv
  (:func:`for_dynamic_batch`), exactly.

The INT8 quantizer that annotates what litert-torch's leaves in float is
:mod:`exporters.formats.tflite_quant`.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import fx, nn

__all__ = ["ExplicitAvgPool2d", "for_dynamic_batch", "rewrite_avg_pools"]

aten = torch.ops.aten


class ExplicitAvgPool2d(nn.Module):
    """``AvgPool2d`` as ``avg_pool(count_include_pad) [* (k*k / count)]`` for a fixed input size; exact.

    With ``as_conv`` the pooling is a depthwise convolution with weights
    ``1 / (k*k)``: XNNPACK runs AVERAGE_POOL_2D only in float, DEPTHWISE_CONV_2D
    also in int8. The correction for ``count_include_pad=False`` borders is a
    constant ``[1, 1, H', W']`` factor (absent where no window touches padding).

    Shapes: ``[N, C, H, W] -> [N, C, H', W']`` with ``C, H, W`` given at construction.
    """

    def __init__(self, pool: nn.AvgPool2d, channels: int, height: int, width: int, as_conv: bool) -> None:
        super().__init__()
        self.kernel, self.stride, self.padding = _pair(pool.kernel_size), _pair(pool.stride), _pair(pool.padding)
        self.channels = channels
        self.correction: torch.Tensor | None
        self.weight: torch.Tensor | None
        if pool.count_include_pad or self.padding == (0, 0):
            self.register_buffer("correction", None)
        else:
            counts = F.avg_pool2d(torch.ones(1, 1, height, width), self.kernel, self.stride, self.padding,
                                  count_include_pad=False, divisor_override=1)
            self.register_buffer("correction", (self.kernel[0] * self.kernel[1]) / counts)
        area = self.kernel[0] * self.kernel[1]
        self.register_buffer("weight", torch.full((channels, 1, *self.kernel), 1.0 / area) if as_conv else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Padding inside the conv / pool (not F.pad): the converter's layout pass keeps a
        # separate pad in NCHW, with a TRANSPOSE pair around it.
        if self.weight is not None:
            x = F.conv2d(x, self.weight, None, self.stride, self.padding, 1, self.channels)
        else:
            x = F.avg_pool2d(x, self.kernel, self.stride, self.padding, count_include_pad=True)
        return x if self.correction is None else x * self.correction


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def rewrite_avg_pools(model: nn.Module, shape: tuple[int, ...], as_conv: bool = False) -> nn.Module:
    """A copy of ``model`` whose ``AvgPool2d`` layers are :class:`ExplicitAvgPool2d` where that helps XNNPACK.

    Rewritten: padded pools with ``count_include_pad=False`` (always), and every
    pool when ``as_conv`` (INT8). ``model`` is not modified; the copy gives the
    same outputs (float rounding aside) for inputs of ``shape``, whose sizes are
    fixed into buffers. A model with nothing to rewrite is returned as it is.
    """
    targets = [name for name, m in model.named_modules()
               if isinstance(m, nn.AvgPool2d) and not m.ceil_mode and m.divisor_override is None
               and (as_conv or (not m.count_include_pad and _pair(m.padding) != (0, 0)))]
    if not targets:
        return model
    model = copy.deepcopy(model)
    sizes: dict[str, tuple[int, int, int]] = {}
    hooks = [model.get_submodule(name).register_forward_pre_hook(
        lambda _m, args, name=name: sizes.__setitem__(name, tuple(args[0].shape[-3:]))) for name in targets]
    with torch.no_grad():
        model(torch.zeros(shape))
    for h in hooks:
        h.remove()
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, ExplicitAvgPool2d(getattr(parent, child), *sizes[name], as_conv=as_conv))
    if isinstance(model, fx.GraphModule):
        model.recompile()
    return model


_FLATTENS = {torch.flatten, torch.reshape, "flatten", "reshape", "view"}


def for_dynamic_batch(model: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """A copy of ``model`` that litert-torch can convert with a symbolic batch; exact.

    litert-torch lowers ``flatten``/``reshape``/``view`` and tensor slicing with
    the sizes of the sample it traced, batch included (a ``RESHAPE`` or
    ``SLICE`` to ``[2, ...]`` that fails once the batch changes). Two rewrites
    remove every such op from the networks here:

    * flattening pooled ``[N, C, 1, 1]`` features (every classifier) becomes
      ``mean(dim=(2, 3))`` of the pool's input, which gives the same ``[N, C]``;
    * a 1x1 stride-2 conv of ``x[:, :, 1:, 1:]`` (DARTS' factorized reduction)
      becomes a 2x2 stride-2 conv of ``x`` whose only non-zero tap is (1, 1):
      both read the pixels ``(2i + 1, 2j + 1)``.

    Only ``torch.fx.GraphModule`` models (what :func:`exporters.freeze.freeze`
    returns) are rewritten; others, or graphs with nothing to rewrite, are
    returned as they are. Shapes come from one run at ``shape``.
    """
    if not isinstance(model, fx.GraphModule):
        return model
    from torch.fx.passes.shape_prop import ShapeProp

    model = copy.deepcopy(model)
    ShapeProp(model).propagate(torch.zeros(shape))
    changed = _offset_slices_as_convs(model)
    for node in list(model.graph.nodes):
        if node.op not in ("call_function", "call_method") or node.target not in _FLATTENS or not node.args:
            continue
        src = node.args[0]
        meta_in, meta_out = (getattr(n, "meta", {}).get("tensor_meta") for n in (src, node))
        if meta_in is None or meta_out is None or not hasattr(meta_in, "shape") or not hasattr(meta_out, "shape"):
            continue
        n_in, n_out = tuple(meta_in.shape), tuple(meta_out.shape)
        if len(n_in) != 4 or n_in[2:] != (1, 1) or n_out != n_in[:2]:
            continue
        pooled = _global_pool_input(model, src)
        if pooled is not None and len(src.users) == 1:
            src = pooled  # pool + flatten in one mean: a keepdim pool lowers to MEAN + a fixed-shape RESHAPE
        with model.graph.inserting_before(node):
            mean = model.graph.call_function(torch.mean, (src, (2, 3)))
        node.replace_all_uses_with(mean)
        model.graph.erase_node(node)
        changed = True
    if changed:
        model.graph.eliminate_dead_code()  # e.g. the x.size(0) of x.view(x.size(0), -1), or a replaced pool
        model.graph.lint()
        model.recompile()
    return model


_OFFSET = (slice(None), slice(None), slice(1, None), slice(1, None))


def _offset_slices_as_convs(model: fx.GraphModule) -> bool:
    """``conv1x1_s2(x[:, :, 1:, 1:])`` -> ``conv2x2_s2(x)`` with the weights at tap (1, 1); see :func:`for_dynamic_batch`."""
    import operator

    changed = False
    for node in list(model.graph.nodes):
        if not (node.op == "call_function" and node.target is operator.getitem and len(node.args) == 2
                and node.args[1] == _OFFSET and node.users):
            continue
        convs = [u for u in node.users if u.op == "call_module"]
        if len(convs) != len(node.users) or not all(_is_pointwise_s2(model.get_submodule(u.target)) for u in convs):
            continue
        for user in convs:
            conv = model.get_submodule(user.target)
            wide = nn.Conv2d(conv.in_channels, conv.out_channels, 2, stride=2, bias=conv.bias is not None)
            with torch.no_grad():
                wide.weight.zero_()
                wide.weight[:, :, 1, 1] = conv.weight[:, :, 0, 0]
                if conv.bias is not None:
                    wide.bias.copy_(conv.bias)
            wide.requires_grad_(False)
            parent, _, child = user.target.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, wide)
            user.replace_input_with(node, node.args[0])
        model.graph.erase_node(node)
        changed = True
    return changed


def _is_pointwise_s2(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.kernel_size == (1, 1) and m.stride == (2, 2) and m.padding == (0, 0)
            and m.dilation == (1, 1) and m.groups == 1)


def _global_pool_input(model: fx.GraphModule, node: fx.Node) -> fx.Node | None:
    """The input of ``node`` when ``node`` is a global average pool to ``[N, C, 1, 1]``, else None."""
    output_one = (1, (1, 1), [1, 1])
    if node.op == "call_module" and isinstance(model.get_submodule(node.target), nn.AdaptiveAvgPool2d):
        pooled = model.get_submodule(node.target).output_size in output_one
    elif node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        pooled = (node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")) in output_one
    elif node.op in ("call_function", "call_method") and node.target in (torch.mean, "mean"):
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keep = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        pooled = keep and dims is not None and tuple(dims) in ((2, 3), (-2, -1))
    else:
        return None
    return node.args[0] if pooled and isinstance(node.args[0], fx.Node) else None
