"""LiteRTRunner on hand-built TFLite flatbuffers (float32 and int8 IO, static and dynamic batch), errors,
and a torch-free import. Building the flatbuffers directly keeps this file fast and free of the converter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")
import flatbuffers  # noqa: E402  (a dependency of ai-edge-litert)
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from bench.errors import ArtifactError  # noqa: E402
from bench.runtimes import RunnerOptions, open_runner  # noqa: E402
from bench.runtimes.litert import METADATA_NAME, LiteRTRunner  # noqa: E402

W = np.random.default_rng(0).uniform(-1, 1, (2, 48)).astype(np.float32)  # logits = flatten(x) @ W.T
IN_Q, W_SCALE, OUT_Q = (0.05, -3), 0.01, (0.1, 2)  # (scale, zero point) of the int8 tensors


def _tensor(shape, ttype, buffer, name, quant=None, signature=None):
    t = schema.TensorT()
    t.shape, t.type, t.buffer, t.name = list(shape), ttype, buffer, name
    if signature is not None:
        t.shapeSignature = list(signature)
    if quant is not None:
        q = schema.QuantizationParametersT()
        q.scale, q.zeroPoint = [float(quant[0])], [int(quant[1])]
        t.quantization = q
    return t


def _buffer(array: np.ndarray | None):
    b = schema.BufferT()
    if array is not None:
        b.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), dtype=np.uint8)
    return b


def build_model(path: Path, int8: bool = False, dynamic: bool = False, metadata: dict | None = None) -> Path:
    """input [1, 3, 4, 4] -> FULLY_CONNECTED (weights W, no bias) -> logits [1, 2], one signature."""
    tt = schema.TensorType
    sig = [-1, 3, 4, 4] if dynamic else None
    if int8:
        wq = np.round(W / W_SCALE).astype(np.int8)
        bias = np.zeros(2, np.int32)
        tensors = [_tensor([1, 3, 4, 4], tt.INT8, 0, "serving_default_input:0", IN_Q, sig),
                   _tensor([2, 48], tt.INT8, 1, "w", (W_SCALE, 0)),
                   _tensor([2], tt.INT32, 2, "b", (IN_Q[0] * W_SCALE, 0)),
                   _tensor([1, 2], tt.INT8, 3, "StatefulPartitionedCall:0", OUT_Q)]
        buffers = [_buffer(None), _buffer(None), _buffer(wq), _buffer(bias), _buffer(None)]
        for i, t in enumerate(tensors):
            t.buffer = i + 1
        op_inputs = [0, 1, 2]
    else:
        tensors = [_tensor([1, 3, 4, 4], tt.FLOAT32, 1, "serving_default_input:0", signature=sig),
                   _tensor([2, 48], tt.FLOAT32, 2, "w"),
                   _tensor([1, 2], tt.FLOAT32, 3, "StatefulPartitionedCall:0")]
        buffers = [_buffer(None), _buffer(None), _buffer(W), _buffer(None)]
        op_inputs = [0, 1, -1]
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    code.version = 4 if int8 else 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, op_inputs, [len(tensors) - 1]
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    graph = schema.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs = tensors, [op], [0], [len(tensors) - 1]
    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = "serving_default", 0
    signature.inputs = [schema.TensorMapT()]
    signature.inputs[0].name, signature.inputs[0].tensorIndex = "input", 0
    signature.outputs = [schema.TensorMapT()]
    signature.outputs[0].name, signature.outputs[0].tensorIndex = "logits", len(tensors) - 1
    model = schema.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.signatureDefs = 3, [code], [graph], [signature]
    model.buffers = buffers
    if metadata is not None:
        model.buffers.append(_buffer(np.frombuffer(json.dumps(metadata).encode(), np.uint8)))
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
        model.metadata = [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def _x(n: int = 1) -> np.ndarray:
    return np.random.default_rng(1).uniform(-2, 2, (n, 3, 4, 4)).astype(np.float32)


def test_float32_model(tmp_path):
    path = build_model(tmp_path / "m.tflite", metadata={"input_layout": "NCHW", "precision": "fp32"})
    with open_runner(path, options=RunnerOptions(threads=1)) as r:
        assert isinstance(r, LiteRTRunner) and r.name == "litert" and r.package == "ai-edge-litert"
        assert (r.input_name, r.input_shape, r.input_dtype) == ("input", (1, 3, 4, 4), "float32")
        assert r.input_quantization is None and r.output_names == ["logits"] and r.output_dtypes == ["float32"]
        assert r.metadata == {"input_layout": "NCHW", "precision": "fp32"} and r.version
        x = _x()
        (y,) = r.run(x)
        assert y.dtype == np.float32 and y.shape == (1, 2)
        np.testing.assert_allclose(y, x.reshape(1, -1) @ W.T, rtol=1e-5, atol=1e-5)


def test_int8_io_is_quantized_and_dequantized(tmp_path):
    with open_runner(build_model(tmp_path / "q.tflite", int8=True)) as r:
        assert r.input_dtype == "int8"
        assert r.input_quantization == pytest.approx(IN_Q) and r.output_quantization[0] == pytest.approx(OUT_Q)
        assert r.metadata == {}
        x = _x()
        (y,) = r.run(x)
        assert y.dtype == np.float32
        # reference: the int8 maths the runner must reproduce (input quantization, int8 weights)
        xq = (np.clip(np.round(x / IN_Q[0]) + IN_Q[1], -128, 127) - IN_Q[1]) * IN_Q[0]
        ref = xq.reshape(1, -1) @ (np.round(W / W_SCALE) * W_SCALE).T
        np.testing.assert_allclose(y, ref, atol=OUT_Q[0] * 0.51 + 1e-6)


def test_dynamic_batch_resizes_once(tmp_path):
    with open_runner(build_model(tmp_path / "d.tflite", dynamic=True)) as r:
        assert r.input_shape == (-1, 3, 4, 4)
        x = _x(5)
        (y,) = r.run(x)
        np.testing.assert_allclose(y, x.reshape(5, -1) @ W.T, rtol=1e-5, atol=1e-5)
        (y1,) = r.run(x[:1])
        np.testing.assert_allclose(y1, y[:1], rtol=1e-6, atol=1e-6)


def test_wrong_shape_is_an_artifact_error(tmp_path):
    with open_runner(build_model(tmp_path / "m.tflite")) as r:
        with pytest.raises(ArtifactError, match=r"takes input \(1, 3, 4, 4\), got \(2, 3, 4, 4\)"):
            r.run(_x(2))


@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all" * 10], ids=["empty", "garbage"])
def test_corrupt_file_is_one_line(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(ArtifactError) as info:
        open_runner(path)
    assert "bad.tflite" in str(info.value) and "\n" not in str(info.value)


def test_truncated_model_is_an_artifact_error(tmp_path):
    good = build_model(tmp_path / "m.tflite").read_bytes()
    path = tmp_path / "cut.tflite"
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ArtifactError, match="cut.tflite"):
        open_runner(path)


def test_missing_file_and_unknown_resolver(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        open_runner(tmp_path / "none.tflite")
    path = build_model(tmp_path / "m.tflite")
    with pytest.raises(ArtifactError, match="unknown op_resolver"):
        LiteRTRunner(path, RunnerOptions(extra=(("op_resolver", "FAST"),)))
    with LiteRTRunner(path, RunnerOptions(extra=(("op_resolver", "BUILTIN_WITHOUT_DEFAULT_DELEGATES"),))) as r:
        np.testing.assert_allclose(r.run(_x())[0], _x().reshape(1, -1) @ W.T, rtol=1e-5, atol=1e-5)


def test_runner_works_without_torch(tmp_path, run_without_torch):
    path = build_model(tmp_path / "q.tflite", int8=True)
    code = (
        "import sys\n"
        "import numpy as np\n"
        "from bench.runtimes import open_runner\n"
        f"r = open_runner({str(path)!r})\n"
        "y = r.run(np.zeros((1, 3, 4, 4), np.float32))[0]\n"
        "assert y.shape == (1, 2) and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok', r.input_dtype)\n"
    )
    assert run_without_torch(code).split() == ["ok", "int8"]
