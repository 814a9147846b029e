"""TFLiteExporter on a tiny conv net (32x32): each precision, parity in LiteRT, the INT8 graph XNNPACK runs whole.

The net holds every pattern the INT8 path rewrites: a padded AvgPool2d with
count_include_pad=False, hardswish, a hardsigmoid squeeze-excite gate and a
ReLU whose input also feeds an add. The three artifacts are exported once per
module (litert-torch takes a few seconds per conversion).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("ai_edge_quantizer")

from bench.runtimes import RunnerOptions, open_runner  # noqa: E402
from exporters.errors import ConversionError  # noqa: E402
from exporters.formats.tflite import TFLiteExporter, read_metadata  # noqa: E402
from exporters.formats.tflite_rewrite import ExplicitAvgPool2d, rewrite_avg_pools  # noqa: E402
from exporters.freeze import freeze  # noqa: E402
from exporters.spec import InputSpec  # noqa: E402

RES = 32
LABELS = ("cat", "dog", "fox", "owl")
SPEC = InputSpec(shape=(1, 3, RES, RES), mean=(0.5,) * 3, std=(0.25,) * 3, labels=LABELS)


class TinyNet(nn.Module):
    """[N, 3, 32, 32] -> [N, 4]: conv-BN-ReLU, conv-BN-hardswish (stride 2), SE gate, shared-input ReLU, pools."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.Hardswish())
        self.se_reduce, self.se_expand = nn.Conv2d(16, 8, 1), nn.Conv2d(8, 16, 1)
        self.mix = nn.Conv2d(16, 16, 1)
        self.pool = nn.AvgPool2d(3, 2, 1, count_include_pad=False)
        self.fc = nn.Linear(16, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(self.stem(x))
        x = x * nn.functional.hardsigmoid(self.se_expand(torch.relu(self.se_reduce(x.mean((2, 3), keepdim=True)))))
        x = x + self.mix(torch.relu(x))
        return self.fc(self.pool(x).mean((2, 3)))


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return freeze(net.eval())


@pytest.fixture(scope="module")
def model() -> nn.Module:
    return _tiny()


@pytest.fixture(scope="module")
def inputs() -> tuple[np.ndarray, np.ndarray]:
    """(calibration [64, 3, 32, 32], held-out parity inputs [32, 3, 32, 32]), float32."""
    rng = np.random.default_rng(0)
    return (rng.standard_normal((64, 3, RES, RES)).astype(np.float32),
            rng.standard_normal((32, 3, RES, RES)).astype(np.float32))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, model, inputs):
    """precision -> the exported .tflite path (one exporter, so FP16 reuses the FP32 conversion)."""
    out = tmp_path_factory.mktemp("tflite")
    exporter = TFLiteExporter()
    return {p: exporter.export(model, SPEC, p, out, f"tiny-{p}", calib=inputs[0] if p == "int8" else None)[0]
            for p in exporter.precisions}


def _run_all(runner, x: np.ndarray) -> np.ndarray:
    return np.concatenate([runner.run(x[i:i + 1])[0] for i in range(len(x))])


@pytest.mark.parametrize("precision, max_diff, min_agree", [("fp32", 1e-4, 1.0), ("fp16", 2e-2, 0.95),
                                                            ("int8", None, 0.85)])
def test_parity_with_pytorch(artifacts, model, inputs, precision, max_diff, min_agree):
    x = inputs[1]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    with open_runner(artifacts[precision], options=RunnerOptions(threads=1)) as r:
        assert r.name == "litert" and r.input_name == SPEC.name and r.output_names == [SPEC.output_name]
        assert r.input_shape == SPEC.shape
        y = _run_all(r, x)
    assert y.shape == ref.shape and y.dtype == np.float32
    agree = float(np.mean(y.argmax(1) == ref.argmax(1)))
    assert agree >= min_agree, agree
    if max_diff is not None:
        assert np.abs(y - ref).max() <= max_diff
    else:  # int8: within a few output quanta of the logits' range
        assert np.abs(y - ref).max() <= 0.1 * np.abs(ref).max() + 0.05


def test_io_types_and_metadata(artifacts):
    for precision, path in artifacts.items():
        with open_runner(path) as r:
            if precision == "int8":
                assert r.input_dtype == "int8" and r.output_dtypes == ["int8"]
                scale, zero_point = r.input_quantization
                assert scale > 0 and -128 <= zero_point <= 127
            else:
                assert r.input_dtype == "float32" and r.input_quantization is None
        meta = read_metadata(path)
        assert meta["precision"] == precision and meta["labels"] == list(LABELS)
        assert meta["mean"] == [0.5] * 3 and meta["std"] == [0.25] * 3 and meta["input_layout"] == "NCHW"


def test_weights_shrink(artifacts):
    """Constant buffers (weights): FP16 about half, INT8 about a quarter of FP32 (the tiny net's file is
    mostly graph structure, so file sizes are compared on the benchmark's real models instead)."""
    from ai_edge_litert import schema_py_generated as schema

    def weight_bytes(path) -> int:
        model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
        return sum(model.Buffers(i).DataLength() for i in range(model.BuffersLength()))

    size = {p: weight_bytes(path) for p, path in artifacts.items()}
    assert size["fp16"] < 0.6 * size["fp32"] and size["int8"] < 0.4 * size["fp32"], size


def _op_types(path) -> set[tuple[str, int]]:
    """(op name, output tensor type) of every operator in the flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytearray(path.read_bytes()), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph, found = model.Subgraphs(0), set()
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        found.add((names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())], graph.Tensors(op.Outputs(0)).Type()))
    return found


def test_int8_graph_is_all_int8_and_one_xnnpack_partition(artifacts):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    ops = _op_types(artifacts["int8"])
    float_ops = sorted(name for name, ttype in ops if ttype != schema.TensorType.INT8)
    assert float_ops == [], float_ops  # no DEQUANTIZE/float island
    names = {name for name, _ in ops}
    # XNNPACK runs these only in float: they must have been rewritten away
    assert not names & {"HARD_SWISH", "AVERAGE_POOL_2D", "RELU", "STABLEHLO_REDUCE_WINDOW", "DIV"}, names
    interpreter = Interpreter(model_path=str(artifacts["int8"]), num_threads=1)
    interpreter.allocate_tensors()
    partitions = [o for o in interpreter._get_ops_details() if o["op_name"] == "DELEGATE"]
    assert len(partitions) == 1


def test_float_graph_has_no_reduce_window(artifacts):
    names = {name for name, _ in _op_types(artifacts["fp32"])}
    assert "STABLEHLO_REDUCE_WINDOW" not in names and "AVERAGE_POOL_2D" in names


@pytest.mark.parametrize("size", [16, 15])
@pytest.mark.parametrize("as_conv", [False, True])
def test_explicit_avg_pool_is_exact(size, as_conv):
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.AvgPool2d(3, 2, 1, count_include_pad=False))
    x = torch.randn(2, 3, size, size)
    rewritten = rewrite_avg_pools(net, (1, 3, size, size), as_conv=as_conv)
    assert isinstance(rewritten[1], ExplicitAvgPool2d) and isinstance(net[1], nn.AvgPool2d)  # input untouched
    torch.testing.assert_close(rewritten(x), net(x), rtol=1e-5, atol=1e-6)
    plain = nn.Sequential(nn.AvgPool2d(2, 2))
    assert rewrite_avg_pools(plain, (1, 3, size, size)) is plain  # nothing to do in float


def test_int8_without_calibration_fails_cleanly(tmp_path, model):
    with pytest.raises(ConversionError, match="INT8 needs calibration inputs") as info:
        TFLiteExporter().export(model, SPEC, "int8", tmp_path, "m-int8", calib=None)
    assert "\n" not in str(info.value) and list(tmp_path.iterdir()) == []


def test_unknown_precision(tmp_path, model):
    with pytest.raises(ConversionError, match="precision 'int4'"):
        TFLiteExporter().export(model, SPEC, "int4", tmp_path, "m")


def test_tool_versions():
    versions = TFLiteExporter().tool_versions()
    assert {"torch", "litert-torch", "ai-edge-litert"} <= set(versions)


def _tiny_derived() -> nn.Module:
    """A frozen 1-cell searched network with a reduction (factorized reduce) and pooled-feature classifier."""
    from edgenas.latency.keys import Layout
    from edgenas.latency.spaces import sample_specs
    from edgenas.models import build

    torch.manual_seed(0)
    spec = sample_specs(1, 0, [Layout(channels=4, cells=3, nodes=2, resolution=16)], ("ds_conv", "identity"))[0]
    return freeze(build(spec).deployable().eval())


def test_dynamic_batch_rewrite_is_exact_and_leaves_no_batch_sized_op():
    import operator

    from exporters.formats.tflite_rewrite import for_dynamic_batch

    net = _tiny_derived()
    rewritten = for_dynamic_batch(net, (1, 3, 16, 16))
    assert rewritten is not net
    x = torch.randn(5, 3, 16, 16)
    torch.testing.assert_close(rewritten(x), net(x), rtol=1e-5, atol=1e-6)
    targets = {n.target for n in rewritten.graph.nodes}
    assert operator.getitem not in targets and not targets & {torch.flatten, "flatten", "view", "reshape"}
    assert operator.getitem in {n.target for n in net.graph.nodes}  # the input is untouched
    plain = nn.Sequential(nn.Conv2d(3, 4, 1))
    assert for_dynamic_batch(plain, (1, 3, 8, 8)) is plain  # not a graph: nothing to do


def test_dynamic_batch_runs_any_batch(tmp_path):
    net = _tiny_derived()
    spec = InputSpec(shape=(1, 3, 16, 16), dynamic_batch=True)
    path = TFLiteExporter().export(net, spec, "fp32", tmp_path, "dyn")[0]
    x = np.random.default_rng(1).standard_normal((6, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    with open_runner(path, options=RunnerOptions(threads=1)) as r:
        assert r.input_shape == (-1, 3, 16, 16)
        np.testing.assert_allclose(r.run(x)[0], ref, atol=1e-4)
        np.testing.assert_allclose(r.run(x[:1])[0], ref[:1], atol=1e-4)
