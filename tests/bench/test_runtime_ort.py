"""OrtRunner on hand-built ONNX graphs (float32, float16 and uint8 inputs), errors, and a torch-free import."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.errors import ArtifactError  # noqa: E402
from bench.runtimes import RunnerOptions, open_runner  # noqa: E402
from bench.runtimes.ort import OrtRunner  # noqa: E402

W = np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.0]], dtype=np.float32)  # [3 channels, 2 classes]


def _model(path: Path, input_type=TensorProto.FLOAT, metadata: dict | None = None, batch="1") -> Path:
    """input [B, 3, 4, 4] -> (cast to float) -> global average pool -> [B, 3] @ W -> logits [B, 2]."""
    nodes, first = [], "input"
    if input_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["input"], ["x_float"], to=TensorProto.FLOAT))
        first = "x_float"
    if input_type == TensorProto.UINT8:  # dequantize in the graph: (q - 128) * 0.05
        nodes += [helper.make_node("Sub", [first, "zp"], ["x_centered"]),
                  helper.make_node("Mul", ["x_centered", "scale"], ["x_deq"])]
        first = "x_deq"
    nodes += [helper.make_node("GlobalAveragePool", [first], ["pooled"]),
              helper.make_node("Flatten", ["pooled"], ["flat"]),
              helper.make_node("MatMul", ["flat", "W"], ["logits"])]
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(np.array(128, np.float32), "zp"),
             numpy_helper.from_array(np.array(0.05, np.float32), "scale")]
    dim0 = int(batch) if batch.isdigit() else batch
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", input_type, [dim0, 3, 4, 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [dim0, 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for k, v in (metadata or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _expected(x: np.ndarray) -> np.ndarray:
    return x.mean((2, 3)) @ W


def test_float32_model(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    with open_runner(_model(tmp_path / "m.onnx", metadata={"input_layout": "NCHW"})) as r:
        assert isinstance(r, OrtRunner) and r.name == "ort"
        assert (r.input_name, r.input_shape, r.input_dtype) == ("input", (1, 3, 4, 4), "float32")
        assert r.input_quantization is None and r.output_names == ["logits"]
        assert r.metadata["input_layout"] == "NCHW" and r.version
        np.testing.assert_allclose(r.run(x)[0], _expected(x), rtol=1e-5, atol=1e-6)


def test_dynamic_batch_and_threads(tmp_path):
    x = np.random.default_rng(0).standard_normal((5, 3, 4, 4)).astype(np.float32)
    with OrtRunner(_model(tmp_path / "m.onnx", batch="batch"), RunnerOptions(threads=2)) as r:
        assert r.input_shape == (-1, 3, 4, 4)
        assert r.run(x)[0].shape == (5, 2)


def test_float16_input_is_cast(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    with open_runner(_model(tmp_path / "m.onnx", TensorProto.FLOAT16)) as r:
        assert r.input_dtype == "float16"
        out = r.run(x)[0]
        assert out.dtype == np.float32
        np.testing.assert_allclose(out, _expected(x.astype(np.float16).astype(np.float32)), atol=1e-3)


def test_uint8_input_is_quantized_with_the_metadata(tmp_path):
    meta = {"input_scale": "0.05", "input_zero_point": "128"}
    x = np.random.default_rng(0).uniform(-3, 3, (1, 3, 4, 4)).astype(np.float32)
    with open_runner(_model(tmp_path / "m.onnx", TensorProto.UINT8, meta)) as r:
        assert r.input_dtype == "uint8" and r.input_quantization == (0.05, 128)
        np.testing.assert_allclose(r.run(x)[0], _expected(x), atol=0.05)


def test_uint8_input_without_quantization_metadata(tmp_path):
    with pytest.raises(ArtifactError, match="no input_scale"):
        open_runner(_model(tmp_path / "m.onnx", TensorProto.UINT8))


def test_corrupt_file_is_a_one_line_artifact_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ArtifactError, match="onnxruntime cannot load bad.onnx") as info:
        open_runner(bad)
    assert "\n" not in str(info.value)


def test_missing_file_and_wrong_shape(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        open_runner(tmp_path / "none.onnx")
    with open_runner(_model(tmp_path / "m.onnx")) as r, pytest.raises(ArtifactError, match=r"takes input \(1, 3, 4, 4\)"):
        r.run(np.zeros((2, 3, 4, 4), np.float32))


NO_TORCH = """
import sys
import numpy as np
import bench.runtimes.ort
from bench.runtimes import open_runner
x = np.load(sys.argv[2])
with open_runner(sys.argv[1]) as runner:
    np.save(sys.argv[3], runner.run(x)[0])
assert sys.modules["torch"] is None
print("ok")
"""


def test_bench_runs_an_exported_model_without_torch(tmp_path, run_without_torch):
    torch = pytest.importorskip("torch")
    from exporters.formats.onnx import OnnxExporter
    from exporters.freeze import freeze
    from exporters.spec import InputSpec

    net = freeze(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)))
    path = OnnxExporter().export(net, InputSpec(shape=(1, 3, 8, 8)), "fp32", tmp_path, "m")[0]
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = run_without_torch(NO_TORCH, str(path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy"))
    assert out.strip() == "ok"
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-5)


def test_providers_option(tmp_path):
    """Execution providers come from options.extra; one this onnxruntime lacks is a clear error."""
    path = _model(tmp_path / "m.onnx")
    runner = open_runner(path, options=RunnerOptions(extra=(("providers", "CPUExecutionProvider"),)))
    assert np.allclose(runner.run(np.ones((1, 3, 4, 4), np.float32))[0], _expected(np.ones((1, 3, 4, 4))))
    with pytest.raises(ArtifactError, match="lacks NoSuchExecutionProvider"):
        open_runner(path, options=RunnerOptions(extra=(("providers", "NoSuchExecutionProvider"),)))


def test_register_runtime(tmp_path):
    from bench.runtimes.base import RUNTIMES, register_runtime, runtime_for

    register_runtime("ort-copy", "bench.runtimes.ort:OrtRunner", extensions=(".onnxcopy",))
    try:
        path = _model(tmp_path / "m.onnxcopy")
        assert runtime_for(path) == "ort-copy" and isinstance(open_runner(path), OrtRunner)
    finally:
        RUNTIMES.unregister("ort-copy")


def test_a_runtime_refuses_a_format_it_does_not_run(tmp_path):
    path = _model(tmp_path / "m.onnx")
    with pytest.raises(ArtifactError, match="runtime litert does not run .onnx files"):
        open_runner(path, runtime="litert")
