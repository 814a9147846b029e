"""OpenVinoExporter on a tiny conv net (32x32): each precision, weights' element types, rt_info, parity at f32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

ov = pytest.importorskip("openvino")
pytest.importorskip("nncf")

from bench.errors import ArtifactError  # noqa: E402
from bench.runtimes import RunnerOptions, open_runner  # noqa: E402
from exporters.errors import ConversionError, UnsupportedError  # noqa: E402
from exporters.formats.openvino import OpenVinoExporter, OpenVinoInt8Config  # noqa: E402
from exporters.freeze import freeze  # noqa: E402
from exporters.spec import InputSpec  # noqa: E402

RES = 32
LABELS = ("cat", "dog", "fox", "owl")
SPEC = InputSpec(shape=(1, 3, RES, RES), mean=(0.5,) * 3, std=(0.25,) * 3, labels=LABELS)


class TinyNet(nn.Module):
    """[N, 3, 32, 32] -> [N, 4]: two conv-BN-ReLU (the second strided), a depthwise conv, pooling, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.Hardswish(),
            nn.AvgPool2d(3, 2, 1, count_include_pad=False), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return freeze(net.eval())


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    """(calibration [64, 3, 32, 32], held-out parity inputs [32, 3, 32, 32]), float32."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((64, 3, RES, RES)).astype(np.float32),
            rng.standard_normal((32, 3, RES, RES)).astype(np.float32))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, model, inputs):
    """precision -> [.xml, .bin] paths."""
    out = tmp_path_factory.mktemp("openvino")
    exporter = OpenVinoExporter()
    return {p: exporter.export(model, SPEC, p, out, f"tiny-{p}", calib=inputs[0] if p == "int8" else None)
            for p in exporter.precisions}


def _constant_types(xml) -> set[str]:
    model = ov.Core().read_model(str(xml))
    return {op.get_output_element_type(0).get_type_name() for op in model.get_ops()
            if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) >= 2}


def test_files(artifacts):
    for precision, files in artifacts.items():
        assert [f.suffix for f in files] == [".xml", ".bin"] and all(f.is_file() for f in files)
        assert files[0].stem == files[1].stem == f"tiny-{precision}"


def test_fp32_ir_holds_fp32_weights(artifacts, model):
    """save_model compresses to FP16 by default: the FP32 IR must not."""
    assert _constant_types(artifacts["fp32"][0]) == {"f32"}
    assert _constant_types(artifacts["fp16"][0]) == {"f16"}
    params = sum(p.numel() for p in model.parameters())
    bin32, bin16 = artifacts["fp32"][1].stat().st_size, artifacts["fp16"][1].stat().st_size
    assert bin32 >= 4 * params and bin16 < 0.6 * bin32


def test_int8_ir_is_quantized(artifacts):
    ops = {op.get_type_name() for op in ov.Core().read_model(str(artifacts["int8"][0])).get_ops()}
    assert "FakeQuantize" in ops or "FakeConvert" in ops
    assert "i8" in _constant_types(artifacts["int8"][0])
    assert artifacts["int8"][1].stat().st_size < 0.4 * artifacts["fp32"][1].stat().st_size


@pytest.mark.parametrize("precision, max_diff, min_agree", [("fp32", 1e-4, 1.0), ("fp16", 2e-2, 0.95),
                                                            ("int8", None, 0.85)])
def test_parity_at_f32(artifacts, model, inputs, precision, max_diff, min_agree):
    x = inputs[1]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with open_runner(artifacts[precision][0], options=RunnerOptions(threads=1)) as r:
        assert r.name == "openvino" and r.inference_precision == "f32" and r.threads == 1
        assert (r.input_name, r.input_shape, r.input_dtype) == (SPEC.name, SPEC.shape, "float32")
        assert r.output_names == [SPEC.output_name]
        y = np.concatenate([r.run(x[i:i + 1])[0] for i in range(len(x))])
    agree = float(np.mean(y.argmax(1) == ref.argmax(1)))
    assert agree >= min_agree, agree
    if max_diff is not None:
        assert np.abs(y - ref).max() <= max_diff
    else:
        assert np.abs(y - ref).max() <= 0.1 * np.abs(ref).max() + 0.05


def test_rt_info(artifacts):
    with open_runner(artifacts["int8"][0]) as r:
        meta = r.metadata
    assert meta["model_info/layout"] == "NCHW" and meta["model_info/labels"] == " ".join(LABELS)
    assert meta["model_info/mean_values"] == "127.5 127.5 127.5"
    assert meta["model_info/scale_values"] == "63.75 63.75 63.75"
    assert meta["edgenas/precision"] == "int8" and meta["edgenas/labels"] == ",".join(LABELS)
    assert meta["edgenas/input_name"] == "input" and meta["edgenas/mean"] == "0.5,0.5,0.5"


def test_dynamic_batch(tmp_path, model):
    spec = InputSpec(shape=(1, 3, RES, RES), dynamic_batch=True)
    xml, _ = OpenVinoExporter().export(model, spec, "fp32", tmp_path, "dyn")
    x = np.random.default_rng(3).standard_normal((5, 3, RES, RES)).astype(np.float32)
    with open_runner(xml) as r:
        assert r.input_shape == (-1, 3, RES, RES)
        with torch.no_grad():
            np.testing.assert_allclose(r.run(x)[0], model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)


def test_broken_artifacts(artifacts, tmp_path):
    xml, weights = artifacts["fp32"]
    copy = tmp_path / "copy.xml"
    copy.write_bytes(xml.read_bytes())
    with pytest.raises(ArtifactError, match="copy.bin is missing"):
        open_runner(copy)
    copy.with_suffix(".bin").write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ArtifactError) as info:
        open_runner(copy)
    assert "copy.xml" in str(info.value) and "\n" not in str(info.value)


def test_int8_without_calibration_fails_cleanly(tmp_path, model):
    with pytest.raises(ConversionError, match="INT8 needs calibration inputs") as info:
        OpenVinoExporter().export(model, SPEC, "int8", tmp_path, "m-int8", calib=np.zeros((0, 3, RES, RES)))
    assert "\n" not in str(info.value) and list(tmp_path.iterdir()) == []


def test_bad_options(tmp_path, model):
    with pytest.raises(ConversionError, match="precision 'int4'"):
        OpenVinoExporter().export(model, SPEC, "int4", tmp_path, "m")
    with pytest.raises(UnsupportedError, match="preset"):
        OpenVinoInt8Config(preset="fastest")


def test_tool_versions():
    assert {"torch", "openvino", "nncf"} <= set(OpenVinoExporter().tool_versions())


class SENet(nn.Module):
    """A conv followed by a squeeze-excite block: NNCF leaves SE blocks unquantized by design."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.fc1, self.fc2 = nn.Conv2d(64, 32, 1), nn.Conv2d(32, 64, 1)
        self.head = nn.Linear(64, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head((x * s).mean((2, 3)))


@pytest.mark.parametrize("compress", [True, False])
def test_int8_compresses_weights_nncf_leaves_in_float(tmp_path, inputs, compress):
    """With compress_float_weights the SE 1x1 convs hold int8 weights too; without, they stay f32."""
    torch.manual_seed(0)
    net = SENet().eval()
    exporter = OpenVinoExporter(OpenVinoInt8Config(compress_float_weights=compress))
    xml, _ = exporter.export(net, SPEC, "int8", tmp_path, "se", calib=inputs[0])
    model = ov.Core().read_model(str(xml))
    float_conv_weights = [op.get_friendly_name() for op in model.get_ops()
                          if op.get_type_name() == "Constant" and len(op.get_output_shape(0)) == 4
                          and op.get_output_element_type(0).get_type_name() == "f32"
                          and op.get_output_shape(0)[0] > 1 and op.get_output_shape(0)[1] > 1]
    assert (float_conv_weights == []) == compress, float_conv_weights
    with open_runner(xml, options=RunnerOptions(threads=1)) as runner:
        with torch.no_grad():
            ref = net(torch.from_numpy(inputs[1][:1])).numpy()
        assert np.abs(runner.run(inputs[1][:1])[0] - ref).max() < 0.1 * np.abs(ref).max() + 0.05
