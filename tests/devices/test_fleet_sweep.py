"""`edgenas sweep --devices`: several SSH devices (real sshd on loopback ports) measured at once, one file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("paramiko")


def _profile(directory, name: str, port: int, user: str) -> None:
    (directory / f"{name}.toml").write_text("\n".join([
        "schema_version = 1", f'name = "{name}"', f'description = "test SSH device {name}"', 'transport = "ssh"',
        'runtime = "ort"', "threads = 1", f'python = "{sys.executable}"', "", "[ssh]", 'host = "127.0.0.1"',
        f'user = "{user}"', f"port = {port}", ""]))


@pytest.fixture
def fleet(sshd_fleet, tmp_path, monkeypatch):
    """Profiles dev-0..dev-2 for the three servers, one key for all, one known_hosts; plus an unreachable dev-x."""
    from tests.conftest import _free_port

    profiles = tmp_path / "profiles"
    profiles.mkdir()
    key = sshd_fleet[0].key
    for i, server in enumerate(sshd_fleet):
        (Path(server.key).parent / "authorized_keys").write_text(Path(key + ".pub").read_text())
        _profile(profiles, f"dev-{i}", server.port, server.user)
    _profile(profiles, "dev-x", _free_port(), sshd_fleet[0].user)  # nothing listens there
    known = tmp_path / "known_hosts"
    known.write_text("".join(Path(s.known_hosts).read_text() for s in sshd_fleet))
    monkeypatch.setenv("EDGENAS_DEVICES_DIR", str(profiles))
    return key, str(known)


def test_fleet_sweep_measures_every_device_into_one_file(fleet, tmp_path):
    from edgenas.cli.main import cli

    key, known = fleet
    args = ["sweep", "mobilenet_v3_small", "--resolutions", "16", "--thread-counts", "1", "--runs", "20",
            "--warmup", "2", "--devices", "dev-0,dev-1,dev-2,dev-x", "--key", key, "--known-hosts", known,
            "--out", str(tmp_path / "sweep")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "sweep" / "records.jsonl").read_text().splitlines()]
    assert sorted(r["device"] for r in records) == ["dev-0", "dev-1", "dev-2"]
    assert all("error" not in r and r["p50_ms"] > 0 for r in records)
    summary = {s["device"]: s for s in json.loads((tmp_path / "sweep" / "fleet.json").read_text())}
    assert summary["dev-x"]["dropped_out"] and "dev-x left out" in result.output
    assert all(summary[f"dev-{i}"]["measured"] == 1 for i in range(3))
    again = CliRunner().invoke(cli, args)  # resumed: nothing is measured twice
    assert again.exit_code == 0
    assert len((tmp_path / "sweep" / "records.jsonl").read_text().splitlines()) == 3


def test_a_device_that_drops_out_is_reported_and_the_others_finish(fleet, sshd_fleet, tmp_path):
    from devices.profiles import load_profile
    from devices.transport import open_transport
    from edgenas.deploy.bench import BenchOptions
    from edgenas.deploy.sweep import SweepPlan, sweep_transports
    from tests.conftest import _start_sshd, _stop

    key, known = fleet
    (tmp_path / "doomed").mkdir()
    proc, doomed = _start_sshd(tmp_path / "doomed")
    (tmp_path / "doomed" / "authorized_keys").write_text(Path(key + ".pub").read_text())
    Path(known).write_text(Path(known).read_text() + Path(doomed.known_hosts).read_text())
    _profile(Path(os.environ["EDGENAS_DEVICES_DIR"]), "dev-d", doomed.port, doomed.user)
    devices = [(load_profile(n), None) for n in ("dev-0", "dev-d")]
    transports = [open_transport(p, key=key, known_hosts=known) for p, _ in devices]
    try:
        import subprocess

        # connected, then gone: its sessions' sshd processes and the server are killed
        subprocess.run(["pkill", "-KILL", "-P", str(proc.pid)], check=False, timeout=10)
        _stop(proc)
        plan = SweepPlan(models=("mobilenet_v3_small",), resolutions=(16,), threads=(1, 2))
        records, summaries = sweep_transports(plan, tmp_path / "sweep", [(p, t.run_job) for (p, _), t in
                                                                  zip(devices, transports)],
                                       BenchOptions(warmup=2, runs=20))
    finally:
        for t in transports:
            t.close()
    by = {s["device"]: s for s in summaries}
    assert by["dev-0"]["measured"] == 2 and by["dev-0"]["dropped_out"] is None
    assert by["dev-d"]["dropped_out"] and by["dev-d"]["failed"] == 2
    failed = [r for r in records if r["device"] == "dev-d"]
    assert len(failed) == 2 and all("dropped out" in r["error"] for r in failed)
