"""``edgenas devices check``: reach a device, probe its python and runtimes (local, and a real sshd)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from edgenas.cli.main import cli


def check(*args: str):
    return CliRunner().invoke(cli, ["devices", "check", *args])


def test_help():
    result = check("--help")
    assert result.exit_code == 0, result.output
    for option in ("--host", "--key", "--known-hosts", "--python", "--timeout", "--json"):
        assert option in result.output


def test_local_json():
    result = check("local", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device"] == "local" and report["transport"] == "local" and report["ok"] is True
    assert report["executable"] == sys.executable and report["packages"]["onnxruntime"]
    assert report["fingerprint"]["cores"] >= 1


def test_local_table():
    result = check("local")
    assert result.exit_code == 0, result.output
    assert "local: reachable" in result.stdout and "default runtime" in result.stdout and "numpy" in result.stdout


def test_an_ssh_device_without_a_host_is_one_line_and_exit_2():
    result = check("rpi4")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: device 'rpi4' has no SSH host: pass --host")
    assert len(result.stderr.strip().splitlines()) == 1 and result.stdout == ""


def test_unknown_device():
    result = check("rpi44")
    assert result.exit_code == 2 and "did you mean 'rpi4'" in result.stderr


def test_an_ssh_device_through_the_test_server(sshd):
    result = check("rpi4", "--host", sshd.spec, "--key", sshd.key, "--known-hosts", sshd.known_hosts,
                   "--python", sys.executable, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["transport"] == "ssh" and report["address"] == sshd.spec and report["ok"] is True
    assert report["packages"]["ai-edge-litert"]  # rpi4's default runtime is litert
    if report["fingerprint"]["arch"] != "aarch64":
        assert report["warnings"] == [f"the profile says arch aarch64, the device reports {report['fingerprint']['arch']}"]
    table = check("rpi4", "--host", sshd.spec, "--key", sshd.key, "--known-hosts", sshd.known_hosts,
                  "--python", sys.executable)
    assert table.exit_code == 0, table.output
    assert "rpi4: reachable" in table.stdout and f"ssh ({sshd.spec})" in table.stdout


def test_ssh_failures_are_one_line(sshd, tmp_path, numpy_free_python):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    for args, expected in [
        (["--known-hosts", str(empty), "--key", sshd.key], "error: the host key of 127.0.0.1"),
        (["--known-hosts", sshd.known_hosts, "--key", sshd.other_key], "refused the key"),
        (["--known-hosts", sshd.known_hosts, "--key", sshd.key, "--python", numpy_free_python],
         f"numpy is not installed for {numpy_free_python}"),
    ]:
        result = check("rpi4", "--host", sshd.spec, *args)
        assert result.exit_code == 2, result.output
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_the_default_runtime_missing_on_the_device(tmp_path):
    """A real python with numpy but no runtime: a venv that sees only this venv's numpy."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    import numpy

    site = next((venv / "lib").glob("python3*/site-packages"))
    numpy_dir = Path(numpy.__file__).parent
    for item in numpy_dir.parent.iterdir():
        if item.name == "numpy" or item.name.startswith(("numpy-", "numpy.libs")):
            os.symlink(item, site / item.name)
    python = str(venv / "bin" / "python")
    result = check("local", "--python", python, "--json")
    assert result.exit_code == 2, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["packages"]["numpy"] and report["packages"]["onnxruntime"] is None
    assert result.stderr.startswith("error: device 'local': its default runtime 'ort' (onnxruntime or onnxruntime-gpu) is not installed")
    assert "pip install onnxruntime" in result.stderr
