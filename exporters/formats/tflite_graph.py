"""Graph preparation for the TFLite converter, so that XNNPACK runs the whole model (in int8 for INT8).

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
* litert-torch's ``PT2EQuantizer`` annotates conv, linear, add, mul, cat, pools
  and sigmoid only: standalone ReLU (DARTS' ReLU-conv-BN), hardswish,
  hardsigmoid (MobileNetV3's gate), avg pool and slice stayed float between
  DEQUANTIZE/QUANTIZE pairs (MobileNetV3-Small INT8 2x slower than FP32).
  :class:`WidePT2EQuantizer` annotates them, and rewrites first (exactly):
  ``hardswish(x) -> x * hardsigmoid(x)``, ``hardsigmoid(x) -> relu6(x + 3) * (1/6)``
  (int8 ADD with fused ReLU6 and MUL), a ReLU not fused into its producer ->
  ``relu(x + 0)`` (ADD with fused ReLU), ``x + 0`` of DARTS' cell sums dropped,
  scalars of add/mul as ``[1, 1, 1, 1]`` constants (a 0-d one made the layout
  pass put a TRANSPOSE pair around the op).
* A conv fused with its ReLU whose output other ops also read was left in
  float (litert-torch's conv+relu annotation skips the conv's output);
  :func:`_unfuse_shared_activations` quantizes that output.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from litert_torch.quantize import pt2e_quantizer as pq
from torch import fx, nn
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

__all__ = ["ExplicitAvgPool2d", "WidePT2EQuantizer", "calibrated_graph", "for_dynamic_batch", "make_quantizer",
           "rewrite_avg_pools"]

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


#: ops whose int8 output may keep the input's scale and zero point (no requantization)
_SAME_SCALE = {aten.avg_pool2d.default, aten.slice.Tensor, aten.clone.default, aten.flatten.using_ints,
               aten.reshape.default, aten.constant_pad_nd.default, aten.pad.default}
#: ops that get their own output observer
_RESCALE = {aten.relu.default, aten.relu_.default, aten.hardswish.default, aten.hardswish_.default,
            aten.add.Tensor, aten.mul.Tensor}
#: ops with a fixed output range [0, 1] (TFLite wants scale 1/256, zero point -128)
_FIXED = {aten.sigmoid.default, aten._softmax.default}


class WidePT2EQuantizer(pq.PT2EQuantizer):
    """litert-torch's quantizer, plus the ops it leaves in float (see the module docstring)."""

    def transform_for_annotation(self, model: fx.GraphModule) -> fx.GraphModule:
        _decompose_hardswish(model)
        _decompose_hardsigmoid(model)
        _drop_identity_arithmetic(model)
        _scalars_to_4d_constants(model)
        return super().transform_for_annotation(model)

    def annotate(self, model: fx.GraphModule) -> fx.GraphModule:
        model = super().annotate(model)
        config = self.global_config
        act = config.input_activation
        out = config.output_activation
        _unfuse_shared_activations(model, act, out)
        for node in model.graph.nodes:
            if node.op != "call_function" or _annotated(node):
                continue
            inputs = [a for a in node.args if isinstance(a, fx.Node) and _is_float_tensor(a)]
            if not inputs:
                continue
            if node.target in _SAME_SCALE:
                spec = {inputs[0]: act}
                output = SharedQuantizationSpec((inputs[0], node))
            elif node.target in _RESCALE:
                spec = {a: act for a in inputs}
                output = out
            elif node.target in _FIXED:
                spec = {inputs[0]: act}
                output = config.fixed_qparams
            else:
                continue
            node.meta["quantization_annotation"] = QuantizationAnnotation(
                input_qspec_map=spec, output_qspec=output, _annotated=True)
        # hardtanh/mean/view after a newly annotated op share its parameters
        pq.propagate_annotation(model)
        _relu_as_add_relu(model, act, out)
        return model


def _unfuse_shared_activations(model: fx.GraphModule, act, out) -> None:
    """Quantize the output of a conv/linear fused with its ReLU when other ops also read that output.

    litert-torch's conv+relu annotation leaves the conv output unobserved even
    when it has other users (DARTS: ``relu(s)`` feeds a conv while ``s`` feeds an
    add); the converter then keeps the conv in float between DEQUANTIZE/QUANTIZE.
    """
    for node in model.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if (node.op != "call_function" or annotation is None or not annotation._annotated
                or annotation.output_qspec is not None or len(node.users) < 2):
            continue
        if node.target not in (aten.conv2d.default, aten.linear.default, aten.conv1d.default):
            continue
        annotation.output_qspec = out
        for user in node.users:
            user_annotation = user.meta.get("quantization_annotation")
            if user_annotation is not None and node not in user_annotation.input_qspec_map:
                user_annotation.input_qspec_map[node] = act


def _relu_as_add_relu(model: fx.GraphModule, act, out) -> None:
    """A ReLU not fused into its producer -> ``relu(x + 0)``: ADD with a fused ReLU.

    XNNPACK runs a standalone int8 RELU outside the delegate (the graph splits
    into partitions around it), an int8 ADD with fused ReLU inside it.
    """
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    changed = False
    for node in list(model.graph.nodes):
        annotation = node.meta.get("quantization_annotation")
        if (node.op != "call_function" or node.target not in (aten.relu.default, aten.relu_.default)
                or annotation is None or not annotation.input_qspec_map):
            continue  # not a relu, or fused into the op before it (no input observer)
        source = node.args[0]
        value = source.meta.get("val")
        if not isinstance(value, torch.Tensor) or value.dim() != 4:
            continue
        name = get_new_attr_name_with_prefix("_relu_zero_")(model)
        model.register_buffer(name, torch.zeros((1, 1, 1, 1), dtype=value.dtype))
        with model.graph.inserting_before(node):
            zero = model.graph.get_attr(name)
            shifted = model.graph.call_function(aten.add.Tensor, (source, zero))
        shifted.meta = {k: v for k, v in source.meta.items() if k in ("val", "tensor_meta")}
        node.args = (shifted, *node.args[1:])
        # The zero shares x's parameters (0 is exact there); an observer of its own sees
        # min = max = 0 and picks a degenerate scale the converter then leaves in float.
        shifted.meta["quantization_annotation"] = QuantizationAnnotation(
            input_qspec_map={source: act, zero: SharedQuantizationSpec((source, shifted))}, _annotated=True)
        annotation.input_qspec_map = {}
        annotation.output_qspec = out
        changed = True
    if changed:
        model.recompile()


def _annotated(node: fx.Node) -> bool:
    annotation = node.meta.get("quantization_annotation")
    return bool(annotation is not None and annotation._annotated)


def _is_float_tensor(node: fx.Node) -> bool:
    value = node.meta.get("val")
    return (isinstance(value, torch.Tensor) and value.is_floating_point()) or node.op == "get_attr"


def _decompose_hardsigmoid(model: fx.GraphModule) -> None:
    """``hardsigmoid(x)`` -> ``hardtanh(x + 3, 0, 6) * (1/6)`` (exact): ADD + RELU6 + MUL, each int8 in TFLite."""
    changed = False
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in (aten.hardsigmoid.default, aten.hardsigmoid_.default):
            continue
        with model.graph.inserting_before(node):
            shifted = model.graph.call_function(aten.add.Tensor, (node.args[0], 3.0))
            clipped = model.graph.call_function(aten.hardtanh.default, (shifted, 0.0, 6.0))
            scaled = model.graph.call_function(aten.mul.Tensor, (clipped, 1.0 / 6.0))
        _replace_node(model, node, (shifted, clipped, scaled))
        changed = True
    if changed:
        model.graph.lint()
        model.recompile()


def _decompose_hardswish(model: fx.GraphModule) -> None:
    """``hardswish(x)`` -> ``x * hardsigmoid(x)``: XNNPACK runs HARD_SWISH only in float, MUL in int8."""
    changed = False
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in (aten.hardswish.default, aten.hardswish_.default):
            continue
        with model.graph.inserting_before(node):
            gate = model.graph.call_function(aten.hardsigmoid.default, (node.args[0],))
            product = model.graph.call_function(aten.mul.Tensor, (node.args[0], gate))
        _replace_node(model, node, (gate, product))
        changed = True
    if changed:
        model.graph.lint()
        model.recompile()


def _replace_node(model: fx.GraphModule, node: fx.Node, new: tuple[fx.Node, ...]) -> None:
    """Route ``node``'s users to the last of ``new`` (its decomposition) and drop ``node``.

    The new nodes inherit the shape metadata the quantizer's annotators read.
    """
    for n in new:
        n.meta = {k: v for k, v in node.meta.items() if k in ("val", "tensor_meta", "stack_trace")}
    node.replace_all_uses_with(new[-1])
    model.graph.erase_node(node)


def _drop_identity_arithmetic(model: fx.GraphModule) -> None:
    """Remove ``x + 0`` and ``x * 1`` (DARTS cells sum from 0); make other integer scalars of add/mul float.

    An integer scalar would become an int64 constant that the activation
    observers cannot handle; ``x + 0`` would cost a requantizing ADD in int8.
    """
    changed = False
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in (aten.add.Tensor, aten.mul.Tensor):
            continue
        args = list(node.args)
        tensors = [a for a in args if isinstance(a, fx.Node)]
        scalars = [a for a in args if isinstance(a, (int, float)) and not isinstance(a, bool)]
        neutral = 0 if node.target is aten.add.Tensor else 1
        if len(tensors) == 1 and len(scalars) == 1 and scalars[0] == neutral and "alpha" not in node.kwargs:
            value = tensors[0].meta.get("val")
            if isinstance(value, torch.Tensor) and value.shape == node.meta.get("val", value).shape:
                node.replace_all_uses_with(tensors[0])
                model.graph.erase_node(node)
                changed = True
                continue
        node.args = tuple(float(a) if isinstance(a, int) and not isinstance(a, bool) else a for a in args)
        changed = True
    if changed:
        model.graph.lint()
        model.recompile()


def _scalars_to_4d_constants(model: fx.GraphModule) -> None:
    """Scalars of add/mul on 4-D tensors -> ``[1, 1, 1, 1]`` constants.

    litert-torch would make them 0-d tensors, and its layout pass keeps an op
    with a non-4-D input in NCHW: a TRANSPOSE pair around every such ADD/MUL.
    """
    from torchao.quantization.pt2e.utils import get_new_attr_name_with_prefix

    changed = False
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in (aten.add.Tensor, aten.mul.Tensor):
            continue
        tensors = [a for a in node.args if isinstance(a, fx.Node)]
        value = tensors[0].meta.get("val") if len(tensors) == 1 else None
        if not isinstance(value, torch.Tensor) or value.dim() != 4:
            continue
        args = []
        for a in node.args:
            if isinstance(a, (int, float)) and not isinstance(a, bool):
                name = get_new_attr_name_with_prefix("_scalar_4d_")(model)
                model.register_buffer(name, torch.full((1, 1, 1, 1), float(a), dtype=value.dtype))
                with model.graph.inserting_before(node):
                    a = model.graph.get_attr(name)
                changed = True
            args.append(a)
        node.args = tuple(args)
    if changed:
        model.recompile()


def make_quantizer(per_channel: bool, wide: bool) -> pq.PT2EQuantizer:
    """The static int8 PT2E quantizer: symmetric (per-channel) int8 weights, asymmetric int8 activations.

    Args:
        per_channel: one weight scale per output channel.
        wide: :class:`WidePT2EQuantizer` (also relu, hardswish, hardsigmoid, avg pool, slice) instead of
            litert-torch's own.
    """
    cls = WidePT2EQuantizer if wide else pq.PT2EQuantizer
    return cls().set_global(pq.get_symmetric_quantization_config(is_per_channel=per_channel))


def calibrated_graph(named: nn.Module, input_name: str, example: torch.Tensor, calib, quantizer,
                     batch: int) -> fx.GraphModule:
    """PT2E static quantization of ``named`` (called as ``named(**{input_name: x})``): the converted graph.

    ``torch.export`` -> ``prepare_pt2e`` -> observers run over ``calib`` (numpy
    ``[N, C, H, W]`` float32) in batches of ``batch`` -> ``convert_pt2e`` (Q/DQ
    pairs kept, ``fold_quantize=False``, which litert-torch's converter expects).
    The graph is exported with a dynamic batch for calibration; a model that
    cannot take one is calibrated one sample at a time.
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval, quantize_pt2e

    batch = max(1, min(batch, len(calib)))
    sample = torch.from_numpy(np.ascontiguousarray(calib[: max(2, batch)]))
    try:
        dim = {"inputs": {input_name: {0: torch.export.Dim("batch", min=1, max=max(1024, batch))}}}
        graph = torch.export.export(named, (), {input_name: sample}, dynamic_shapes=dim).module()
    except (RuntimeError, ValueError, TypeError, AssertionError, torch._dynamo.exc.UserError):
        graph, batch = torch.export.export(named, (), {input_name: example}).module(), example.shape[0]
    graph = quantize_pt2e.prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for i in range(0, len(calib) - batch + 1, batch):
            graph(**{input_name: torch.from_numpy(np.ascontiguousarray(calib[i:i + batch]))})
    graph = quantize_pt2e.convert_pt2e(graph, fold_quantize=False)
    graph = move_exported_model_to_eval(graph)
    for module in graph.modules():
        # exported modules refuse .eval(); the flag only stops the converter's training-mode warning
        module.training = False
    return graph
