"""bench.measure and bench.worker on a hand-built ONNX model: record fields, accuracy, errors, torch-free worker."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from bench.errors import ArtifactError, BenchError  # noqa: E402
from bench.measure import MeasureConfig, latency_stats, measure  # noqa: E402
from bench.runtimes import RunnerOptions  # noqa: E402
from bench.worker import job_files, localize, make_job, package_files  # noqa: E402
from tests.bench.conftest import ROOT  # noqa: E402
from tests.bench.tiny_models import make_onnx  # noqa: E402

W = np.array([[1.0, -1.0, 0.0], [0.0, 2.0, -1.0], [-1.0, 0.0, 1.5]], dtype=np.float32)  # 3 channels, 3 classes
FAST = MeasureConfig(warmup=2, runs=20)


@pytest.fixture
def model(tmp_path):
    return make_onnx(tmp_path / "tiny.onnx", W)


def test_latency_stats_on_known_times():
    stats = latency_stats(np.array([1e6, 2e6, 3e6, 4e6, 100e6]))
    assert stats["min_ms"] == 1 and stats["p50_ms"] == 3 and stats["max_ms"] == 100
    assert stats["mean_ms"] == 22 and stats["cv"] == pytest.approx(np.std([1, 2, 3, 4, 100], ddof=1) / 22, abs=1e-4)
    assert stats["p90_ms"] == pytest.approx(61.6) and stats["p99_ms"] == pytest.approx(96.16)


def test_record(model):
    record = measure(model, options=RunnerOptions(threads=1), config=FAST, meta={"device": "local"})
    assert record["format"] == "onnx" and record["runtime"] == "ort" and record["precision"] == "fp32"
    assert record["runs"] == 20 and record["warmup"] == 2 and record["threads"] == 1 and record["batch"] == 1
    assert 0 < record["min_ms"] <= record["p50_ms"] <= record["p90_ms"] <= record["p99_ms"] <= record["max_ms"]
    assert record["load_ms"] > 0 and record["first_run_ms"] > 0 and record["peak_rss_mb"] > 20
    # the harness's own cost per call is a few hundred nanoseconds at most
    assert 0 <= record["overhead_us"] < 5
    assert record["artifact_bytes"] == model.stat().st_size and len(record["artifact_sha256"]) == 64
    assert record["input_shape"] == [1, 3, 4, 4] and record["resolution"] == 4
    assert record["fingerprint"]["cores"] >= 1 and record["meta"] == {"device": "local"}
    assert record["accuracy"] is None
    json.dumps(record)  # JSON-serialisable as is


def _labelled(tmp_path, n=40, side=4):
    """uint8 NHWC images and the labels the model predicts for them (its own argmax)."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    x = (images.astype(np.float32) / 255 - 0.5) / 0.25
    labels = (x.mean((1, 2)) @ W).argmax(1)
    return images, labels


@pytest.mark.parametrize("wrong", [0, 10])
def test_accuracy_uses_the_artifacts_preprocessing(model, tmp_path, wrong):
    images, labels = _labelled(tmp_path)
    labels = labels.copy()
    labels[:wrong] = (labels[:wrong] + 1) % 3
    np.savez(tmp_path / "val.npz", images=images, labels=labels)
    record = measure(model, config=FAST, data=tmp_path / "val.npz")
    assert record["accuracy"] == pytest.approx(100 * (40 - wrong) / 40) and record["accuracy_samples"] == 40


def test_accuracy_pads_a_static_batch(tmp_path):
    model = make_onnx(tmp_path / "b4.onnx", W, batch=4)
    images, labels = _labelled(tmp_path, n=10)
    np.savez(tmp_path / "val.npz", images=images, labels=labels)
    record = measure(model, config=FAST, data=tmp_path / "val.npz")
    assert record["batch"] == 4 and record["accuracy"] == 100 and record["accuracy_samples"] == 10


def test_dynamic_batch(tmp_path):
    model = make_onnx(tmp_path / "dyn.onnx", W, batch="N")
    assert measure(model, config=MeasureConfig(warmup=1, runs=5, batch=8))["input_shape"] == [8, 3, 4, 4]


def test_errors(model, tmp_path):
    with pytest.raises(ArtifactError, match="static batch of 1"):
        measure(model, config=MeasureConfig(runs=2, batch=2))
    with pytest.raises(ArtifactError, match="does not exist"):
        measure(tmp_path / "missing.onnx", config=FAST)
    (tmp_path / "corrupt.onnx").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="cannot load"):
        measure(tmp_path / "corrupt.onnx", config=FAST)
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 8, 8, 3), np.uint8), labels=np.zeros(2))
    with pytest.raises(BenchError, match="8x8 images"):
        measure(model, config=FAST, data=tmp_path / "wrong.npz")
    with pytest.raises(BenchError, match="runs must be"):
        MeasureConfig(runs=0)


def _worker(*args, cwd=ROOT):
    """Run the worker in a fresh interpreter where torch cannot be imported."""
    code = "import sys; sys.modules['torch'] = None; from bench.worker import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    return done.returncode, json.loads(done.stdout.strip().splitlines()[-1]) if done.stdout.strip() else None


def test_worker_runs_a_job_without_torch(model, tmp_path):
    job = make_job(model, runs=10, warmup=1, meta={"model": "tiny"})
    (tmp_path / "job.json").write_text(json.dumps(job))
    code, record = _worker(str(tmp_path / "job.json"))
    assert code == 0 and record["p50_ms"] > 0 and record["runs"] == 10 and record["meta"] == {"model": "tiny"}


def test_worker_failures_are_one_json_line(model, tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    code, out = _worker(str(tmp_path / "bad.json"))
    assert code == 2 and out["error_type"] == "JobError"
    (tmp_path / "job.json").write_text(json.dumps(make_job(tmp_path / "missing.onnx")))
    code, out = _worker(str(tmp_path / "job.json"))
    assert code == 3 and out["error_type"] == "ArtifactError" and "missing.onnx" in out["error"]
    (tmp_path / "typo.json").write_text(json.dumps({"artifact": str(model), "rnus": 3}))
    code, out = _worker(str(tmp_path / "typo.json"))
    assert code == 2 and "rnus" in out["error"]


def test_worker_probe():
    code, info = _worker("--probe")
    assert code == 0 and info["packages"]["numpy"] and info["packages"]["onnxruntime"]
    assert info["fingerprint"]["cores"] >= 1 and info["python"].count(".") == 2


def test_shipping_helpers(tmp_path):
    job = make_job(tmp_path / "m.xml", data=str(tmp_path / "val.npz"))
    assert job_files(job) == [str(tmp_path / "m.xml"), str(tmp_path / "m.bin"), str(tmp_path / "val.npz")]
    local = localize(job, {str(tmp_path / "m.xml"): "m.xml", str(tmp_path / "val.npz"): "val.npz"})
    assert local["artifact"] == "m.xml" and local["data"] == "val.npz" and job["artifact"] != "m.xml"
    shipped = dict((rel, path) for path, rel in package_files())
    assert "bench/worker.py" in shipped and "bench/runtimes/ort.py" in shipped
    assert not any(rel.startswith(("edgenas", "devices", "exporters")) for rel in shipped)
    with pytest.raises(ValueError, match="unknown job keys"):
        make_job("m.onnx", rnus=3)


def test_peak_rss_is_the_workers_own(model, tmp_path):
    """Linux carries ru_maxrss over fork+exec; the record must not include the parent's memory."""
    ballast = np.ones(400 * 2**20 // 8)  # 400 MiB held (and touched) by this process
    (tmp_path / "job.json").write_text(json.dumps(make_job(model, runs=5, warmup=1)))
    code, record = _worker(str(tmp_path / "job.json"))
    assert code == 0 and record["peak_rss_mb"] < 300, record["peak_rss_mb"]
    del ballast
