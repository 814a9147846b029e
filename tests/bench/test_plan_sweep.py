"""bench.plan (what to measure) and bench.sweep (resume keys, CSV, plots): host-side, no runtime needed."""

from __future__ import annotations

import csv
import json

import pytest

from bench.errors import ArtifactError
from bench.files import append_jsonl
from bench.plan import resolve_targets
from bench.sweep import pareto_front, done_keys, key, plot_records, write_csv


def _manifest(directory, entries):
    directory.mkdir(parents=True, exist_ok=True)
    artifacts = []
    for fmt, prec, status in entries:
        path = f"model-{prec}.{ {'onnx': 'onnx', 'tflite': 'tflite', 'openvino': 'xml'}[fmt] }"
        (directory / path).write_bytes(b"x")
        artifacts.append({"format": fmt, "precision": prec, "status": status, "path": path,
                          "input": {"shape": [1, 3, 96, 96]}, "parity": {"accuracy": 0.5}})
    (directory / "manifest.json").write_text(json.dumps({"source": {"name": "mnv3"}, "artifacts": artifacts}))
    return directory


def test_targets_from_manifest_dirs_and_files(tmp_path):
    run = tmp_path / "run"
    _manifest(run / "exports", [("onnx", "fp32", "ok"), ("onnx", "int8", "ok"), ("tflite", "fp32", "failed")])
    targets = resolve_targets([str(run)])
    assert [(t.format, t.precision, t.resolution, t.model) for t in targets] == [
        ("onnx", "fp32", 96, "mnv3"), ("onnx", "int8", 96, "mnv3")]
    assert targets[0].info["parity_accuracy"] == 0.5
    assert len(resolve_targets([str(run / "exports" / "manifest.json")], precisions={"int8"})) == 1
    (tmp_path / "m.tflite").write_bytes(b"x")
    assert resolve_targets([str(tmp_path / "m.tflite")])[0].model == "m"


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.onnx", "does not exist"),
    (lambda d: (d / "m.pt").write_bytes(b"x") and d / "m.pt", "unknown model format"),
    (lambda d: (d / "empty").mkdir() or d / "empty", "no manifest.json"),
    (lambda d: (d / "bad.json").write_text("[") and d / "bad.json", "not an export manifest"),
])
def test_target_errors(tmp_path, make, match):
    with pytest.raises(ArtifactError, match=match):
        resolve_targets([str(make(tmp_path))])


def test_filters_that_leave_nothing(tmp_path):
    _manifest(tmp_path / "e", [("onnx", "fp32", "ok")])
    with pytest.raises(ArtifactError, match="no artifact left"):
        resolve_targets([str(tmp_path / "e")], formats={"tflite"})


def _record(**kw):
    plan = {"device": "local", "model": "m", "format": "onnx", "precision": "fp32", "resolution": 32, "batch": 1,
            "threads": 1, "runtime": "ort", "inference_precision": None, **kw}
    return {**plan, "plan": plan, "p50_ms": 1.0, "p90_ms": 1.2, "p99_ms": 1.5, "min_ms": 0.9, "mean_ms": 1.05,
            "std_ms": 0.1, "cv": 0.1, "accuracy": 50.0, "meta": {"macs": 5e6, "params": 1000}}


def test_resume_keys_use_the_plan(tmp_path):
    path = tmp_path / "records.jsonl"
    ok = _record()
    ok["inference_precision"] = "f32"  # what the runtime reported: the key still uses what was asked
    append_jsonl(path, ok)
    failed = {**_record(threads=2), "error": "timed out"}
    append_jsonl(path, failed)
    with open(path, "a") as fh:
        fh.write('{"torn": ')  # a kill mid-write
    assert done_keys(path) == {key(ok["plan"]), key(failed["plan"])}
    assert done_keys(path, retry_failed=True) == {key(ok["plan"])}


def test_csv_and_plots(tmp_path):
    records = [_record(), _record(model="n", threads=2), {**_record(precision="int8"), "error": "boom"}]
    write_csv(records, tmp_path / "r.csv")
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert len(rows) == 3 and rows[0]["p50_ms"] == "1.0" and rows[0]["macs"] == "5000000.0"
    assert rows[2]["error"] == "boom"
    pytest.importorskip("matplotlib")
    written = plot_records(records, tmp_path / "plots")
    assert {p.name for p in written} == {"latency_vs_macs.png", "accuracy_vs_latency.png"}
    assert all(p.stat().st_size > 5000 for p in written)


def testpareto_front_front():
    assert pareto_front([(1, 50), (2, 40), (2, 60), (3, 55), (4, 70)]) == [(1, 50), (2, 60), (4, 70)]
