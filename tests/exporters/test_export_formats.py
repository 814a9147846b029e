"""One template over every registered format x precision, on the tiny searched network.

A format whose exporter or runtime module does not exist yet, or whose
converter package is missing, is skipped; so is a precision the format does
not support. Each format is exported once (all its precisions) per session.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from conftest import CLASSES, RES

from exporters.base import FORMATS
from exporters.manifest import sha256_of
from exporters.spec import PRECISIONS, InputSpec

#: packages each format needs to convert and to run its artifacts
PACKAGES = {"onnx": ("onnx", "onnxruntime"), "tflite": ("litert_torch", "ai_edge_litert"),
            "openvino": ("openvino", "nncf")}
#: formats whose converter is too slow for the default suite (litert-torch: ~140 s for the three
#: precisions of the tiny network on a busy 2-core machine); they run with -m slow
SLOW_FORMATS: set[str] = set()  # TFLite took 24 s for 3 precisions once its converter was tuned
#: (min top-1 agreement, max abs logit diff) per precision, on this tiny random network
TOLERANCE = {"fp32": (0.999, 1e-3), "fp16": (0.9, 0.05), "int8": (0.6, 1.0)}


def _exporter_or_skip(fmt: str):
    from bench.runtimes.base import RUNTIMES
    from exporters.base import get_exporter

    module = FORMATS.get(fmt).split(":")[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    for package in PACKAGES.get(fmt, ()):
        pytest.importorskip(package)
    exporter = get_exporter(fmt)
    runtime_module = RUNTIMES.get(exporter.runtime).target.split(":")[0]
    if importlib.util.find_spec(runtime_module) is None:
        pytest.skip(f"{runtime_module} does not exist yet")
    return exporter


@pytest.fixture(scope="module")
def exports(tmp_path_factory, tiny_net, tiny_inputs):
    """format -> (out_dir, manifest or the error), exported on first use."""
    from exporters.api import export
    from exporters.errors import ArtifactsFailedError

    cache = {}

    def get(fmt: str, exporter):
        if fmt not in cache:
            out = tmp_path_factory.mktemp(f"export-{fmt}")
            spec = InputSpec(shape=(1, 3, RES, RES), mean=(0.5,) * 3, std=(0.25,) * 3, labels=CLASSES)
            parity = np.random.default_rng(2).standard_normal((24, 3, RES, RES)).astype(np.float32)
            labels = tiny_net(__import__("torch").from_numpy(parity)).argmax(1).numpy()
            try:
                cache[fmt] = (out, export(tiny_net.deployable(), spec, fmt, exporter.precisions, out,
                                          calib=tiny_inputs, parity_inputs=parity, parity_labels=labels))
            except ArtifactsFailedError as exc:
                cache[fmt] = (out, exc.manifest)
        return cache[fmt]

    return get


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("fmt", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW_FORMATS else f for f in FORMATS])
def test_artifact(fmt, precision, exports):
    exporter = _exporter_or_skip(fmt)
    if precision not in exporter.precisions:
        pytest.skip(f"{fmt} does not support {precision}")
    out, manifest = exports(fmt, exporter)
    entry = manifest.get(fmt, precision)
    assert entry is not None and entry.status == "ok", entry and entry.error

    # files: present, checksummed, nothing left from staging
    main = out / entry.path
    assert main.is_file() and main.suffix == exporter.extension
    assert entry.sha256 == sha256_of(main)
    assert entry.bytes == sum((out / f["path"]).stat().st_size for f in entry.files)
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    assert (out / "manifest.json").is_file() and (out / "labels.txt").read_text().split() == list(CLASSES)

    # what a mobile app needs
    assert entry.runtime == exporter.runtime and entry.format == fmt and entry.precision == precision
    io = entry.input
    assert io["name"] == "input" and io["layout"] in ("NCHW", "NHWC")
    assert sorted(io["shape"]) == sorted([1, 3, RES, RES])
    assert io["dtype"] in ("float32", "float16", "int8", "uint8")
    assert (io["quantization"] is not None) == (io["dtype"] in ("int8", "uint8"))
    assert entry.normalisation["mean"] == [0.5] * 3 and entry.normalisation["std"] == [0.25] * 3
    assert entry.normalisation["scale"] == pytest.approx(1 / 255)
    assert entry.labels == CLASSES and entry.labels_file == "labels.txt"
    assert entry.outputs[0]["meaning"] == "logits" and entry.outputs[0]["shape"] == [1, len(CLASSES)]
    out0 = entry.outputs[0]
    assert (out0["quantization"] is not None) == (out0["dtype"] in ("int8", "uint8"))
    if fmt == "tflite" and precision == "int8":  # PT2E INT8: integer IO, scale and zero point recorded
        assert out0["dtype"] == "int8" and out0["quantization"]["scale"] > 0
    else:
        assert out0["dtype"] in ("float32", "float16")
    assert entry.export_time_s > 0 and entry.tool_versions

    # parity with PyTorch
    min_agree, max_diff = TOLERANCE[precision]
    p = entry.parity
    assert p["n_inputs"] == 24 and p["reference_accuracy"] == 1.0 and "accuracy" in p
    assert p["top1_agreement"] >= min_agree, p
    assert p["max_abs_diff"] <= max_diff, p
    if precision == "fp32":
        assert p["passed"] and p["warning"] is None


def test_onnx_artifacts_are_self_contained_and_checked(exports):
    onnx = pytest.importorskip("onnx")
    exporter = _exporter_or_skip("onnx")
    out, manifest = exports("onnx", exporter)
    for entry in manifest.artifacts:
        model = onnx.load(str(out / entry.path))  # loads: no external data file next to it
        onnx.checker.check_model(model, full_check=True)
        assert model.opset_import[0].version >= 17
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["input_layout"] == "NCHW" and meta["labels"] == ",".join(CLASSES)
        assert meta["mean"] == "0.5,0.5,0.5" and meta["precision"] == entry.precision
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # IO stays float32
        ops = {n.op_type for n in model.graph.node}
        assert ("QuantizeLinear" in ops) == (entry.precision == "int8")
        if entry.precision == "int8":  # compact_names: short internal names, IO names kept
            assert max(len(t) for n in model.graph.node for t in n.output if t != "logits") < 8
        assert "BatchNormalization" not in ops
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".onnx", ".onnx", ".onnx", ".txt"]


def test_each_format_runs_in_the_runtime_the_bench_registers_for_it():
    """The exporters name their artifacts' runtime, the bench names each runtime's format: one map, both ways."""
    from bench.runtimes.base import format_of_runtime, runtime_of_format

    for fmt in FORMATS:
        module = FORMATS.get(fmt).split(":")[0]
        if importlib.util.find_spec(module) is None:
            continue
        runtime = importlib.import_module(module)
        exporter = next(v for v in vars(runtime).values() if getattr(v, "format", None) == fmt)
        assert format_of_runtime(exporter.runtime) == fmt
        assert runtime_of_format(fmt) == exporter.runtime
