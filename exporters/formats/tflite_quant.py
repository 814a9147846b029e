"""The INT8 PT2E quantizer for the TFLite converter, so that XNNPACK runs the whole int8 model in int8.

Graph rewrites that make pools and slices convertible are :mod:`exporters.formats.tflite_rewrite`.
What litert-torch's own quantizer left in float, and the fix for each
(measured on the searched model and MobileNetV3-Small, 1 thread):

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

import numpy as np
import torch
from litert_torch.quantize import pt2e_quantizer as pq
from torch import fx, nn
from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

__all__ = ["WidePT2EQuantizer", "calibrated_graph", "make_quantizer"]

aten = torch.ops.aten

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


def _rewrite(model: fx.GraphModule, targets: tuple, expand) -> None:
    """Replace every call of ``targets`` by the nodes ``expand(graph, input)`` returns (the last is the result)."""
    changed = False
    for node in list(model.graph.nodes):
        if node.op != "call_function" or node.target not in targets:
            continue
        with model.graph.inserting_before(node):
            new = expand(model.graph, node.args[0])
        _replace_node(model, node, new)
        changed = True
    if changed:
        model.graph.lint()
        model.recompile()


def _decompose_hardsigmoid(model: fx.GraphModule) -> None:
    """``hardsigmoid(x)`` -> ``hardtanh(x + 3, 0, 6) * (1/6)`` (exact): ADD + RELU6 + MUL, each int8 in TFLite."""
    def expand(graph, x):
        shifted = graph.call_function(aten.add.Tensor, (x, 3.0))
        clipped = graph.call_function(aten.hardtanh.default, (shifted, 0.0, 6.0))
        return shifted, clipped, graph.call_function(aten.mul.Tensor, (clipped, 1.0 / 6.0))

    _rewrite(model, (aten.hardsigmoid.default, aten.hardsigmoid_.default), expand)


def _decompose_hardswish(model: fx.GraphModule) -> None:
    """``hardswish(x)`` -> ``x * hardsigmoid(x)``: XNNPACK runs HARD_SWISH only in float, MUL in int8."""
    def expand(graph, x):
        gate = graph.call_function(aten.hardsigmoid.default, (x,))
        return gate, graph.call_function(aten.mul.Tensor, (x, gate))

    _rewrite(model, (aten.hardswish.default, aten.hardswish_.default), expand)


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
