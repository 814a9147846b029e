"""exporters.export: validation before work, failures recorded, merge, stale files, dynamic batch (ONNX)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CLASSES, RES

from exporters.api import export, validate_request
from exporters.errors import (
    ArtifactsFailedError,
    ConversionError,
    ParityError,
    UnsupportedError,
)
from exporters.manifest import Source, read_manifest
from exporters.spec import InputSpec

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

SPEC = InputSpec(shape=(1, 3, RES, RES), mean=(0.5,) * 3, std=(0.25,) * 3, labels=CLASSES)
SOURCE = Source("arch", "tiny", "0" * 64, "random")


def _files(out):
    return sorted(p.name for p in out.iterdir())


@pytest.mark.parametrize("formats,precisions,match", [
    ("onnx,coreml", "fp32", "unknown format 'coreml'"),
    ("onnx", "fp32,bf16", "unknown precision 'bf16'"),
    ("", "fp32", "no format given"),
])
def test_unknown_names_fail_before_any_work(tmp_path, tiny_net, formats, precisions, match):
    out = tmp_path / "out"
    with pytest.raises(UnsupportedError, match=match) as info:
        export(tiny_net, SPEC, formats, precisions, out)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_int8_without_calibration_fails_before_any_work(tmp_path, tiny_net):
    with pytest.raises(UnsupportedError, match="calibration"):
        export(tiny_net, SPEC, "onnx", "fp32,int8", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_validate_request_normalises_names():
    assert validate_request(" ONNX ,onnx", ["fp32", "int8"]) == (("onnx",), ("fp32", "int8"))


def test_one_failure_is_recorded_and_the_others_are_listed(tmp_path, tiny_net, tiny_inputs, monkeypatch):
    from exporters.formats.onnx import OnnxExporter

    def broken(*args, **kwargs):
        raise ConversionError("model-int8: the quantizer cannot express this")

    monkeypatch.setattr(OnnxExporter, "_to_int8", broken)
    out = tmp_path / "out"
    with pytest.raises(ArtifactsFailedError, match="1 of 2 artifacts failed: onnx/int8: model-int8: the quant") as info:
        export(tiny_net, SPEC, "onnx", "fp32,int8", out, calib=tiny_inputs, source=SOURCE)
    assert "\n" not in str(info.value)
    manifest = read_manifest(out)
    assert info.value.manifest.artifacts == manifest.artifacts
    assert manifest.get("onnx", "fp32").status == "ok"
    failed = manifest.get("onnx", "int8")
    assert failed.status == "failed" and "cannot express" in failed.error and failed.path is None
    assert _files(out) == ["labels.txt", "manifest.json", "model-fp32.onnx"]  # nothing half-written


def test_parity_failure_publishes_nothing(tmp_path, tiny_net, monkeypatch):
    import exporters.api

    def disagree(*args, **kwargs):
        raise ParityError("model-fp32.onnx: FP32 artifact agrees with PyTorch on 50.00% of top-1 predictions")

    monkeypatch.setattr(exporters.api, "check_parity", disagree)
    out = tmp_path / "out"
    with pytest.raises(ArtifactsFailedError, match="agrees with PyTorch on 50.00%"):
        export(tiny_net, SPEC, "onnx", "fp32", out, source=SOURCE)
    assert _files(out) == ["manifest.json"]
    assert read_manifest(out).get("onnx", "fp32").status == "failed"


def test_merge_keeps_earlier_entries_and_drops_stale_files(tmp_path, tiny_net, monkeypatch):
    from exporters.formats.onnx import OnnxExporter

    out = tmp_path / "out"
    export(tiny_net, SPEC, "onnx", "fp32", out, source=SOURCE)
    export(tiny_net, SPEC, ["onnx"], ["fp16"], out, source=SOURCE)
    manifest = read_manifest(out)
    assert [a.key for a in manifest.artifacts] == [("onnx", "fp32"), ("onnx", "fp16")]

    def broken(*args, **kwargs):
        raise ConversionError("model-fp16: no")

    monkeypatch.setattr(OnnxExporter, "_to_fp16", broken)
    with pytest.raises(ArtifactsFailedError):
        export(tiny_net, SPEC, "onnx", "fp16", out, source=SOURCE)
    manifest = read_manifest(out)
    assert manifest.get("onnx", "fp32").status == "ok" and manifest.get("onnx", "fp16").status == "failed"
    assert _files(out) == ["labels.txt", "manifest.json", "model-fp32.onnx"]  # the outdated fp16 file is gone


def test_dynamic_batch(tmp_path, tiny_net):
    from dataclasses import replace

    from bench.runtimes import open_runner

    out = tmp_path / "out"
    parity = np.random.default_rng(3).standard_normal((70, 3, RES, RES)).astype(np.float32)
    manifest = export(tiny_net, replace(SPEC, dynamic_batch=True), "onnx", "fp32", out, parity_inputs=parity)
    entry = manifest.get("onnx", "fp32")
    assert entry.input["shape"] == [-1, 3, RES, RES] and entry.input["dynamic_batch"]
    assert entry.outputs[0]["shape"] == [-1, len(CLASSES)] and entry.parity["n_inputs"] == 70
    with open_runner(out / entry.path) as runner:
        assert runner.run(parity[:5])[0].shape == (5, len(CLASSES))


def test_model_that_does_not_fit_the_spec(tmp_path, tiny_net):
    with pytest.raises(ConversionError, match="5 labels for 4 outputs"):
        export(tiny_net, InputSpec(shape=(1, 3, RES, RES), labels=("a", "b", "c", "d", "e")), "onnx", "fp32",
               tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_another_network_replaces_the_directory_contents(tmp_path, tiny_net):
    out = tmp_path / "out"
    export(tiny_net, SPEC, "onnx", "fp16", out, source=SOURCE)
    other = Source("baseline", "other", None, "random")
    export(tiny_net, SPEC, "onnx", "fp32", out, source=other)
    manifest = read_manifest(out)
    assert manifest.source == other and [a.key for a in manifest.artifacts] == [("onnx", "fp32")]
    assert _files(out) == ["labels.txt", "manifest.json", "model-fp32.onnx"]


def test_int8_onnx_of_a_stage_network_quantizes_its_pooled_norms_per_tensor_without_a_warning(tmp_path, caplog):
    """A batch norm after a max pool stays a 1-D weight in the graph: per tensor, as onnxruntime falls back to,
    without its root-logger warning that there is no channel axis (it named no problem to the user)."""
    import logging

    import torch

    from edgenas.models import build
    from edgenas.space.stages import Stage, StageSpec

    torch.manual_seed(0)
    net = build(StageSpec(stem_channels=0, stages=(Stage(8, 3, True, 0), Stage(16, 3, True, 1)), resolution=RES,
                          num_classes=len(CLASSES))).eval()
    calib = np.random.default_rng(0).standard_normal((16, 3, RES, RES)).astype(np.float32)
    with caplog.at_level(logging.WARNING):
        manifest = export(net.deployable(), SPEC, "onnx", ["int8"], tmp_path / "out", calib=calib,
                          parity_inputs=calib)
    assert manifest.get("onnx", "int8").status == "ok"
    assert not [r for r in caplog.records if "out-of-range for weight" in r.getMessage()]
    assert logging.getLogger().filters == []  # the filter is gone once the quantizer is done
