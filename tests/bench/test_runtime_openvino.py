"""OpenVinoRunner on hand-built IRs: precision hint, dynamic batch, metadata, broken .xml/.bin, no torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

ov = pytest.importorskip("openvino")

from bench.errors import ArtifactError  # noqa: E402
from bench.runtimes import RunnerOptions, open_runner  # noqa: E402
from bench.runtimes.openvino import OpenVinoRunner  # noqa: E402

W = np.random.default_rng(0).uniform(-1, 1, (48, 2)).astype(np.float32)  # logits = flatten(x) @ W


def build_ir(path: Path, dynamic: bool = False) -> Path:
    """input [1, 3, 4, 4] -> reshape [N, 48] -> matmul W -> logits [N, 2]; saved with f32 weights."""
    ops = ov.opset13
    x = ops.parameter([-1 if dynamic else 1, 3, 4, 4], ov.Type.f32, name="input")
    x.output(0).get_tensor().set_names({"input"})
    flat = ops.reshape(x, ops.constant(np.array([-1, 48], np.int64)), special_zero=False)
    logits = ops.matmul(flat, ops.constant(W), transpose_a=False, transpose_b=False)
    logits.output(0).get_tensor().set_names({"logits"})
    model = ov.Model([logits], [x], "tiny")
    model.set_rt_info("NCHW", ["model_info", "layout"])
    model.set_rt_info("fp32", ["edgenas", "precision"])
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def _x(n: int = 1) -> np.ndarray:
    return np.random.default_rng(1).uniform(-2, 2, (n, 3, 4, 4)).astype(np.float32)


def test_float_ir_runs_at_f32_by_default(tmp_path):
    with open_runner(build_ir(tmp_path / "m.xml"), options=RunnerOptions(threads=1)) as r:
        assert isinstance(r, OpenVinoRunner) and r.name == "openvino"
        assert (r.input_name, r.input_shape, r.input_dtype) == ("input", (1, 3, 4, 4), "float32")
        assert r.input_quantization is None and r.output_names == ["logits"]
        assert r.inference_precision == "f32" and r.threads == 1 and r.version
        assert r.metadata == {"model_info/layout": "NCHW", "edgenas/precision": "fp32"}
        x = _x()
        (y,) = r.run(x)
        assert y.dtype == np.float32 and y.shape == (1, 2)
        np.testing.assert_allclose(y, x.reshape(1, -1) @ W, rtol=1e-5, atol=1e-5)


def test_bf16_is_used_only_when_asked(tmp_path):
    path = build_ir(tmp_path / "m.xml")
    with OpenVinoRunner(path, RunnerOptions(inference_precision="bf16")) as r:
        # "bf16" where the CPU has it; OpenVINO falls back to f32 elsewhere and the runner says so
        assert r.inference_precision in ("bf16", "f32")
        np.testing.assert_allclose(r.run(_x())[0], _x().reshape(1, -1) @ W, rtol=0.05, atol=0.1)
    with pytest.raises(ArtifactError, match="unknown inference precision 'int4'"):
        OpenVinoRunner(path, RunnerOptions(inference_precision="int4"))


def test_dynamic_batch(tmp_path):
    with open_runner(build_ir(tmp_path / "d.xml", dynamic=True)) as r:
        assert r.input_shape == (-1, 3, 4, 4)
        x = _x(5)
        np.testing.assert_allclose(r.run(x)[0], x.reshape(5, -1) @ W, rtol=1e-5, atol=1e-5)


def test_wrong_shape_is_an_artifact_error(tmp_path):
    with open_runner(build_ir(tmp_path / "m.xml")) as r:
        with pytest.raises(ArtifactError, match=r"takes input \(1, 3, 4, 4\), got \(2, 3, 4, 4\)"):
            r.run(_x(2))


def test_missing_bin_is_one_line(tmp_path):
    path = build_ir(tmp_path / "m.xml")
    path.with_suffix(".bin").unlink()
    with pytest.raises(ArtifactError, match="m.bin is missing"):
        open_runner(path)


def test_truncated_bin_is_one_line(tmp_path):
    path = build_ir(tmp_path / "m.xml")
    weights = path.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ArtifactError) as info:
        open_runner(path)
    assert "m.xml" in str(info.value) and "\n" not in str(info.value)


def test_corrupt_xml_is_one_line(tmp_path):
    path = build_ir(tmp_path / "m.xml")
    path.write_text(path.read_text()[:200])
    with pytest.raises(ArtifactError) as info:
        open_runner(path)
    assert "m.xml" in str(info.value) and "\n" not in str(info.value)


def test_runner_works_without_torch(tmp_path, run_without_torch):
    path = build_ir(tmp_path / "m.xml")
    code = (
        "import numpy as np\n"
        "from bench.runtimes import open_runner\n"
        f"r = open_runner({str(path)!r})\n"
        "y = r.run(np.zeros((1, 3, 4, 4), np.float32))[0]\n"
        "assert y.shape == (1, 2)\n"
        "print('ok', r.inference_precision)\n"
    )
    assert run_without_torch(code).split() == ["ok", "f32"]
