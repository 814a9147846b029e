"""Tiny hand-built artifacts for the bench tests (no torch, no exporter)."""

from __future__ import annotations

from pathlib import Path


def make_onnx(path: Path, weights, batch: int | str = 1, side: int = 4,
              metadata: dict | None = None) -> Path:
    """A tiny ONNX classifier: input [B, 3, side, side] -> global average pool -> @ weights [3, K] -> logits.

    Carries the metadata our exporter writes (mean 0.5, std 0.25, scale 1/255, NCHW, fp32) unless overridden.
    """
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.asarray(weights, dtype=np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["input"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("MatMul", ["flat", "W"], ["logits"])]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, weights.shape[1]])],
        [numpy_helper.from_array(weights, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {"input_layout": "NCHW", "input_scale_to_unit": repr(1 / 255), "mean": "0.5,0.5,0.5",
            "std": "0.25,0.25,0.25", "precision": "fp32", **(metadata or {})}
    for key, value in meta.items():
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
