"""`edgenas bench`, `sweep` and `compare` end to end on this machine: real exports, real worker processes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from devices.errors import RemoteTimeoutError  # noqa: E402
from devices.profiles import load_profile  # noqa: E402
from devices.transports.local import LocalTransport  # noqa: E402
from edgenas.deploy.bench import BenchOptions  # noqa: E402
from edgenas.cli.main import cli  # noqa: E402
from edgenas.errors import ConfigError  # noqa: E402
from edgenas.deploy.sweep import SweepPlan, sweep_transport  # noqa: E402

FAST = BenchOptions(warmup=1, runs=5, timeout=120)
PLAN = SweepPlan(models=("mobilenet_v3_small",), formats=("onnx",), precisions=("fp32",), resolutions=(32,),
                 threads=(1, 2), calib=16)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


class Interrupted(Exception):
    pass


def test_sweep_resumes_without_measuring_twice(tmp_path):
    calls = []
    transport = LocalTransport()

    def dies_on_second(job, timeout):
        calls.append(job["threads"])
        if len(calls) == 2:
            raise Interrupted  # as if the sweep were killed during the second measurement
        return transport.run_job(job, timeout)

    with pytest.raises(Interrupted):
        sweep_transport(PLAN, tmp_path, dies_on_second, load_profile("local"), FAST)
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == 1

    calls.clear()
    records = sweep_transport(PLAN, tmp_path, lambda job, t: calls.append(job["threads"]) or transport.run_job(job, t),
                        load_profile("local"), FAST)
    assert calls == [2]  # only the unfinished measurement, and no new export
    assert sorted(r["threads"] for r in records) == [1, 2] and all(r["p50_ms"] > 0 for r in records)
    assert all(r["model"] == "mobilenet_v3_small" and r["meta"]["macs"] > 1e6 for r in records)
    assert (tmp_path / "records.csv").read_text().count("\n") == 3
    assert (tmp_path / "plots" / "latency_vs_macs.png").is_file()


def test_a_tensorrt_plan_exports_onnx_and_hands_it_to_the_tensorrt_runtime(tmp_path):
    """Engines are built on the device: the host exports ONNX, the job names the tensorrt runtime, and a device
    without TensorRT records why (every machine without a GPU; on one with TensorRT it is measured)."""
    from bench.runtimes.base import export_format_of

    assert export_format_of("tensorrt") == "onnx" and export_format_of("tflite") == "tflite"
    plan = SweepPlan(models=("mobilenet_v3_small",), formats=("onnx", "tensorrt"), precisions=("fp32",),
                     resolutions=(32,), threads=(1,), calib=16)
    assert plan.export_formats == ("onnx",)
    jobs = []
    transport = LocalTransport()
    records = sweep_transport(plan, tmp_path, lambda job, t: jobs.append(job) or transport.run_job(job, t),
                              load_profile("local"), FAST)
    assert [(j["runtime"], j["artifact"].endswith(".onnx")) for j in jobs] == [("ort", True), ("tensorrt", True)]
    by_format = {r["plan"]["format"]: r for r in records}
    assert by_format["onnx"]["p50_ms"] > 0 and by_format["tensorrt"]["plan"]["runtime"] == "tensorrt"
    manifest = json.loads(next((tmp_path / "exports").glob("*/manifest.json")).read_text())
    assert {a["format"] for a in manifest["artifacts"]} == {"onnx"}
    trt = by_format["tensorrt"]
    if "error" in trt:
        assert "tensorrt" in trt["error"].lower() or "polygraphy" in trt["error"].lower()
    else:
        assert trt["runtime"] == "tensorrt" and trt["p50_ms"] > 0


def test_a_hung_measurement_is_recorded_and_the_sweep_goes_on(tmp_path):
    transport = LocalTransport()

    def hangs_once(job, timeout):
        if job["threads"] == 1:
            raise RemoteTimeoutError("the bench worker on local ran past 1 s and was killed")
        return transport.run_job(job, timeout)

    records = sweep_transport(PLAN, tmp_path, hangs_once, load_profile("local"), FAST)
    failed = [r for r in records if "error" in r]
    assert len(records) == 2 and len(failed) == 1 and failed[0]["error_type"] == "RemoteTimeoutError"
    # a re-run keeps the failure (nothing is measured twice) unless asked to retry it
    calls = []
    sweep_transport(PLAN, tmp_path, lambda j, t: calls.append(j) or transport.run_job(j, t), load_profile("local"), FAST)
    assert calls == []
    records = sweep_transport(PLAN, tmp_path, lambda j, t: calls.append(j) or transport.run_job(j, t),
                        load_profile("local"), FAST, retry_failed=True)
    assert len(calls) == 1 and sum("error" not in r for r in records) == 2


@pytest.mark.parametrize("kwargs, message", [
    (dict(formats=("onnx", "caffe")), r"unknown format .caffe. \(known: onnx, tflite, openvino, tensorrt;"),
    (dict(threads=(0,)), "threads"),
    (dict(models=()), "at least one model"),
    (dict(weights={"other": "w.pt"}), "not in the sweep"),
])
def test_bad_plans(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SweepPlan(**{**PLAN.__dict__, **kwargs})


def test_bench_cli_json_and_records_file(tmp_path):
    from edgenas.deploy.export import run_export

    run_export("mobilenet_v3_small", "onnx", "fp32,int8", out=str(tmp_path / "e"), calib=16, parity_samples=16)
    result = run("bench", tmp_path / "e", "--threads", "1", "--runs", "5", "--warmup", "1", "--json",
                 "--out", tmp_path / "r.jsonl")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["precision"] for r in records] == ["fp32", "int8"]
    assert all(r["device"] == "local" and r["p50_ms"] > 0 and r["threads"] == 1 for r in records)
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("args, message", [
    (["missing.onnx"], "does not exist"),
    (["{tmp}/m.caffemodel"], "unknown model format"),
    (["{tmp}/corrupt.onnx"], "cannot load"),
    (["{tmp}/corrupt.onnx", "--device", "rpi9"], "unknown device"),
])
def test_bench_cli_bad_input(tmp_path, args, message):
    (tmp_path / "m.caffemodel").write_bytes(b"x")
    (tmp_path / "corrupt.onnx").write_bytes(b"not onnx")
    result = run("bench", *[a.format(tmp=tmp_path) for a in args], "--runs", "2")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert lines and message in lines[-1].lower(), result.output


def test_compare_writes_table_and_plot_into_the_report(tmp_path, tiny_search_options):
    from edgenas.search.config import SearchConfig
    from edgenas.search.runner import run_search

    run_dir = tmp_path / "run"
    run_search(SearchConfig(**{**tiny_search_options, "resolution": 32}, out=str(run_dir)))
    result = run("compare", run_dir, "--baselines", "mobilenet_v3_small", "--formats", "onnx",
                 "--precisions", "fp32", "--threads", "1", "--runs", "5", "--warmup", "1",
                 "--data", "synthetic", "--samples", "20")
    assert result.exit_code == 0, result.output
    report = (run_dir / "report.md").read_text()
    assert "## Device comparison (local)" in report and "| mobilenet_v3_small |" in report
    assert "compare/plots/accuracy_vs_latency.png" in report
    assert (run_dir / "compare" / "plots" / "accuracy_vs_latency.png").is_file()
    # a second comparison replaces the section instead of appending another
    assert run("compare", run_dir, "--baselines", "mobilenet_v3_small", "--formats", "onnx", "--precisions",
               "fp32", "--threads", "1", "--runs", "5").exit_code == 0
    assert (run_dir / "report.md").read_text().count("## Device comparison") == 1


def test_bench_over_ssh_with_accuracy(tmp_path, sshd):
    """`edgenas bench --device rpi4 --host ...` against the loopback sshd: the artifact and the labelled
    data are shipped, measured by the device's python, and the record comes back."""
    import sys

    from edgenas.deploy.export import run_export

    run_export("mobilenet_v3_small", "tflite", "fp32", out=str(tmp_path / "e"), parity_samples=16)
    result = run("bench", tmp_path / "e", "--device", "rpi4", "--host", sshd.spec, "--key", sshd.key,
                 "--known-hosts", sshd.known_hosts, "--python", sys.executable, "--runs", "5", "--warmup", "1",
                 "--data", "synthetic", "--samples", "20", "--json")
    assert result.exit_code == 0, result.output
    (record,) = json.loads(result.stdout)
    assert record["device"] == "rpi4" and record["format"] == "tflite" and record["threads"] == 4
    assert record["p50_ms"] > 0 and record["accuracy_samples"] == 20 and 0 <= record["accuracy"] <= 100
