"""LocalTransport: the bench worker in a subprocess on this machine (real worker, real onnxruntime)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bench.worker import make_job
from devices import (
    DevicesError,
    MissingRuntimeError,
    RemoteError,
    RemoteTimeoutError,
    TransportError,
    load_profile,
    open_transport,
)
from devices.transports.local import LocalTransport

REPO = Path(__file__).resolve().parents[2]


def job_dirs() -> set[str]:
    return {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("edgenas-job-")}


def test_probe_reports_python_fingerprint_and_packages():
    with LocalTransport() as device:
        probe = device.probe(timeout=60)
    assert device.name == "local" and device.python == sys.executable
    assert probe["python"] == ".".join(map(str, sys.version_info[:3]))
    assert probe["fingerprint"]["cores"] >= 1
    assert probe["packages"]["numpy"]


def test_job_with_a_relative_path_runs_and_leaves_no_job_file(conv_onnx, tmp_path, monkeypatch):
    monkeypatch.chdir(conv_onnx.parent)
    before = job_dirs()
    with LocalTransport() as device:
        record = device.run_job(make_job(conv_onnx.name, runs=5, warmup=1, meta={"model": "conv"}), timeout=120)
    assert record["p50_ms"] > 0 and record["runs"] == 5 and record["warmup"] == 1
    assert record["input_shape"] == [1, 3, 8, 8] and record["meta"] == {"model": "conv"}
    assert job_dirs() <= before


def test_a_failed_measurement_is_returned_as_the_workers_record(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    record = LocalTransport().run_job(make_job(bad, runs=5, warmup=1), timeout=120)
    assert record["error_type"] == "ArtifactError" and "bad.onnx" in record["error"]
    assert "p50_ms" not in record


def test_a_missing_job_file_is_an_error_before_anything_runs(tmp_path):
    with pytest.raises(TransportError, match="does not exist"):
        LocalTransport().run_job(make_job(tmp_path / "absent.onnx"), timeout=60)


def test_a_bad_job_is_rejected_with_the_workers_reason(conv_onnx):
    with pytest.raises(RemoteError, match="rejected the job.*unknown job keys: colour"):
        LocalTransport().run_job({**make_job(conv_onnx), "colour": "red"}, timeout=60)


def test_a_job_past_its_timeout_is_killed(conv_onnx):
    start = time.monotonic()
    with pytest.raises(RemoteTimeoutError, match=r"within 1.5 s; it was killed"):
        LocalTransport().run_job(make_job(conv_onnx, runs=10**8, warmup=0),
                                 timeout=1.5)
    assert time.monotonic() - start < 6


def test_a_python_that_does_not_exist():
    with pytest.raises(RemoteError, match="cannot run python '/nonexistent/python'"):
        LocalTransport("/nonexistent/python").probe(timeout=10)


def test_a_python_without_numpy_is_named(numpy_free_python, conv_onnx):
    with pytest.raises(MissingRuntimeError, match=f"numpy is not installed for {numpy_free_python}"):
        LocalTransport(numpy_free_python).probe(timeout=30)
    record = LocalTransport(numpy_free_python).run_job(make_job(conv_onnx, runs=5, warmup=1), timeout=30)
    assert record["error_type"] == "RuntimeMissingError" and "numpy" in record["error"]


def test_bad_timeouts_are_rejected():
    for timeout in (0, -1, float("nan"), True):
        with pytest.raises(TransportError, match="timeout must be"):
            LocalTransport().probe(timeout=timeout)


def test_open_transport_for_the_local_profile():
    with open_transport(load_profile("local")) as device:
        assert isinstance(device, LocalTransport) and device.python == sys.executable
    with open_transport(load_profile("local"), python="/usr/bin/python3") as device:
        assert device.python == "/usr/bin/python3"
    with pytest.raises(DevicesError, match="takes no --host, --key"):
        open_transport(load_profile("local"), host="pi@example", key="k")


def test_transports_import_without_torch_or_paramiko():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['paramiko'] = None\n"
            "import devices, devices.transport, devices.transports\n"
            "assert 'edgenas' not in sys.modules\n"
            "from devices.transports.ssh import SshTransport\n"
            "try:\n    SshTransport('127.0.0.1')\nexcept devices.TransportError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "pip install 'edgenas[ssh]'" in done.stdout
