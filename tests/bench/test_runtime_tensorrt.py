"""The TensorRT runtime: what it opens, its engine cache key, its one-line refusal where TensorRT is missing, and,
on a machine with an NVIDIA GPU and TensorRT, engines built from our ONNX exports against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from bench.errors import ArtifactError, RuntimeMissingError
from bench.runtimes.base import open_runner, runtime_for
from bench.runtimes.tensorrt import cache_dir, engine_key

pytest.importorskip("onnx")
from tests.bench.tiny_models import make_onnx  # noqa: E402
from tests.gpu import tensorrt_gpu  # noqa: E402

W = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
GPU = tensorrt_gpu()


def test_engines_default_to_tensorrt_and_onnx_may_open_there(tmp_path):
    assert runtime_for("m.engine") == runtime_for("m.plan") == "tensorrt"
    assert runtime_for("m.onnx") == "ort"
    tflite = tmp_path / "m.tflite"
    tflite.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="runtime tensorrt does not run .tflite files"):
        open_runner(tflite, "tensorrt")


def test_the_cache_key_follows_the_onnx_the_flags_the_version_and_the_host(tmp_path, monkeypatch):
    key = engine_key(b"onnx", {"fp16": False, "int8": True}, "10.3.0", "orin")
    assert key == engine_key(b"onnx", {"int8": True, "fp16": False}, "10.3.0", "orin")
    others = {engine_key(b"onnx2", {"fp16": False, "int8": True}, "10.3.0", "orin"),
              engine_key(b"onnx", {"fp16": True, "int8": True}, "10.3.0", "orin"),
              engine_key(b"onnx", {"fp16": False, "int8": True}, "8.6.2", "orin"),
              engine_key(b"onnx", {"fp16": False, "int8": True}, "10.3.0", "nano")}
    assert key not in others and len(others) == 4
    monkeypatch.setenv("EDGENAS_TRT_CACHE", str(tmp_path / "engines"))
    assert cache_dir() == tmp_path / "engines"


@pytest.mark.skipif(GPU, reason="TensorRT and a GPU are here")
def test_without_tensorrt_the_runtime_says_what_to_install(tmp_path):
    path = make_onnx(tmp_path / "tiny.onnx", W)
    with pytest.raises(RuntimeMissingError) as info:
        open_runner(path, "tensorrt")
    message = str(info.value)
    assert "\n" not in message and ("tensorrt" in message or "polygraphy" in message or "TensorRT" in message)


@pytest.mark.skipif(not GPU, reason="needs TensorRT 8.5+, polygraphy and an NVIDIA GPU")
def test_an_engine_built_from_onnx_matches_onnxruntime_and_is_cached(tmp_path, monkeypatch):
    from bench.measure import MeasureConfig, measure

    monkeypatch.setenv("EDGENAS_TRT_CACHE", str(tmp_path / "engines"))
    path = make_onnx(tmp_path / "tiny.onnx", W, batch="batch", side=8)
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with open_runner(path, "ort") as ort:
        expected = ort.run(x)[0]
    with open_runner(path, "tensorrt") as trt:
        assert trt.flags == {"int8": False, "fp16": False} and trt.engine_path.is_file()
        assert trt.input_shape == (-1, 3, 8, 8) and trt.metadata["mean"] == "0.5,0.5,0.5"
        np.testing.assert_allclose(trt.run(x)[0], expected, rtol=1e-4, atol=1e-5)
        engine = trt.engine_path
    with open_runner(engine) as again:  # the cached engine on its own, metadata from its sidecar
        assert again.metadata["precision"] == "fp32"
        np.testing.assert_allclose(again.run(x[:1])[0], expected[:1], rtol=1e-4, atol=1e-5)
    record = measure(path, "tensorrt", config=MeasureConfig(warmup=5, runs=20, energy_seconds=0))
    assert record["format"] == "tensorrt" and record["runtime"] == "tensorrt" and record["p50_ms"] > 0


@pytest.mark.skipif(not GPU, reason="needs TensorRT 8.5+, polygraphy and an NVIDIA GPU")
def test_our_fp32_and_int8_exports_build_the_engines_they_ask_for(tmp_path, monkeypatch):
    torch = pytest.importorskip("torch")
    from edgenas.models.baselines import build_baseline
    from exporters.api import export
    from exporters.spec import InputSpec

    monkeypatch.setenv("EDGENAS_TRT_CACHE", str(tmp_path / "engines"))
    torch.manual_seed(0)
    model = build_baseline("fast_cnn", num_classes=10).eval()
    rng = np.random.default_rng(0)
    calib = rng.standard_normal((32, 3, 32, 32)).astype(np.float32)
    spec = InputSpec(shape=(1, 3, 32, 32), mean=(0.5,) * 3, std=(0.25,) * 3)
    manifest = export(model, spec, "onnx", "fp32,fp16,int8", tmp_path / "out", calib=calib)
    x = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
    for entry in manifest.artifacts:
        path = tmp_path / "out" / entry.path
        with open_runner(path, "ort") as ort, open_runner(path, "tensorrt") as trt:
            assert trt.flags == {"int8": entry.precision == "int8", "fp16": entry.precision == "fp16"}
            ours, theirs = trt.run(x)[0], ort.run(x)[0]
            if entry.precision == "fp32":
                np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)
            elif entry.precision == "fp16":
                np.testing.assert_allclose(ours, theirs, rtol=2e-2, atol=2e-2)
            else:  # the same QDQ scales, TensorRT's own int8 kernels
                assert np.argmax(ours) == np.argmax(theirs)


class _Tensor:
    def __init__(self, dtype):
        self.dtype = dtype


class _Layer:
    def __init__(self, type_, *dtypes):
        self.type, self._outputs = type_, [_Tensor(d) for d in dtypes]
        self.num_outputs = len(dtypes)

    def get_output(self, j):
        return self._outputs[j]


class _Network:
    """The part of a parsed ``trt.INetworkDefinition`` that :func:`build_flags` reads."""

    def __init__(self, input_dtype, layers):
        self._input, self._layers = _Tensor(input_dtype), layers
        self.num_inputs, self.num_layers = 1, len(layers)

    def get_input(self, i):
        return self._input

    def get_layer(self, i):
        return self._layers[i]


def test_build_flags_read_our_exports_precisions():
    from types import SimpleNamespace

    from bench.runtimes.tensorrt import build_flags

    trt = SimpleNamespace(float32="f32", float16="f16", int8="i8",
                          LayerType=SimpleNamespace(QUANTIZE="q", DEQUANTIZE="dq", CONVOLUTION="conv", CAST="cast"))
    fp32 = _Network("f32", [_Layer("conv", "f32")])
    # our FP16 export keeps float32 input and output: fp16 tensors only inside, after a cast
    fp16 = _Network("f32", [_Layer("cast", "f16"), _Layer("conv", "f16"), _Layer("cast", "f32")])
    int8 = _Network("f32", [_Layer("q", "i8"), _Layer("dq", "f32"), _Layer("conv", "f32")])
    assert build_flags(fp32, trt, {}) == {"int8": False, "fp16": False}
    assert build_flags(fp16, trt, {}) == {"int8": False, "fp16": True}
    assert build_flags(int8, trt, {}) == {"int8": True, "fp16": False}
    assert build_flags(fp32, trt, {}, {"precision": "fp16"})["fp16"]
    assert build_flags(fp32, trt, {"fp16": "1"}) == {"int8": False, "fp16": True}
    assert build_flags(_Network("f16", []), trt, {})["fp16"]


def test_the_runtime_imports_without_torch(tmp_path, run_without_torch):
    path = make_onnx(tmp_path / "tiny.onnx", W)
    code = ("from bench.errors import RuntimeMissingError\n"
            "from bench.runtimes import open_runner\n"
            "import bench.runtimes.tensorrt\n"
            "try:\n"
            f"    r = open_runner({str(path)!r}, 'tensorrt')\n"
            "    print('ok', r.run(__import__('numpy').zeros((1, 3, 4, 4), 'float32'))[0].shape)\n"
            "except RuntimeMissingError:\n"
            "    print('ok missing')\n")
    assert run_without_torch(code).split()[0] == "ok"
