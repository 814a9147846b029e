"""SshTransport against a real OpenSSH server on loopback (the ``sshd`` fixture; skips without sshd).

The "remote" python is this venv's (numpy and the runtimes are there).
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.worker import make_job
from devices import (
    AuthenticationError,
    DeviceProfile,
    HostKeyError,
    HostSpecError,
    HostUnreachableError,
    MissingRuntimeError,
    RemoteError,
    RemoteTimeoutError,
    load_profile,
    open_transport,
)
from devices.transports.ssh import SshTransport


def connect(sshd, **overrides) -> SshTransport:
    options = {"host": sshd.host, "user": sshd.user, "port": sshd.port, "python": sys.executable, "key": sshd.key,
               "known_hosts": sshd.known_hosts, "connect_timeout": 5}
    return SshTransport(**{**options, **overrides})


def worker_pids(marker: str) -> list[int]:
    """Pids of processes whose command line mentions ``marker`` (sshd's sessions run on this machine)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and "bench.worker" in cmdline:
                pids.append(int(entry))
    return pids


def test_probe_over_ssh(sshd):
    with connect(sshd) as device:
        probe = device.probe(timeout=30)
        session = device._session
        assert device.name == "ssh" and device.address == f"{sshd.user}@127.0.0.1:{sshd.port}"
        assert probe["executable"] == sys.executable
        assert probe["fingerprint"]["cores"] >= 1 and probe["packages"]["numpy"]
        assert Path(session, "bench", "worker.py").is_file()  # shipped once, reused by later jobs
    assert not os.path.exists(session)  # close() removed it


def test_jobs_over_ssh_reuse_the_connection_and_leave_nothing_behind(sshd, conv_onnx, monkeypatch):
    monkeypatch.chdir(conv_onnx.parent)  # a relative path is resolved here, copied there
    with connect(sshd) as device:
        first = device.run_job(make_job(conv_onnx.name, runs=5, warmup=1, meta={"n": 1}), timeout=60)
        client = device._client
        second = device.run_job(make_job(conv_onnx, runs=5, warmup=1, threads=2, meta={"n": 2}), timeout=60)
        assert device._client is client
        session = device._session
        assert sorted(os.listdir(session)) == ["bench"]  # the job directories are gone
    for record, n in ((first, 1), (second, 2)):
        assert record["p50_ms"] > 0 and record["runs"] == 5 and record["meta"] == {"n": n}
        assert record["artifact"] == "conv.onnx" and record["input_shape"] == [1, 3, 8, 8]
    assert second["threads"] == 2
    assert not os.path.exists(session)


def test_a_failed_measurement_over_ssh_is_returned(sshd, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with connect(sshd) as device:
        record = device.run_job(make_job(bad, runs=5, warmup=1), timeout=60)
    assert record["error_type"] == "ArtifactError" and "bad.onnx" in record["error"]


def test_a_job_past_its_timeout_is_killed_on_the_device(sshd, conv_onnx):
    with connect(sshd) as device:
        start = time.monotonic()
        with pytest.raises(RemoteTimeoutError, match=r"did not finish within 1 s; it was killed"):
            device.run_job(make_job(conv_onnx, runs=10**8, warmup=0), timeout=1)
        assert time.monotonic() - start < 1 + 5
        deadline = time.monotonic() + 5
        while worker_pids(device._session) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker_pids(device._session) == []


def test_without_a_remote_timeout_command_the_worker_is_killed_by_pid(sshd, conv_onnx):
    with connect(sshd) as device:
        device.probe(timeout=30)
        device._has_timeout = False  # as on a device without `timeout`: only the local deadline applies
        with pytest.raises(RemoteTimeoutError, match="it was killed"):
            device.run_job(make_job(conv_onnx, runs=10**8, warmup=0), timeout=0.5)
        deadline = time.monotonic() + 5
        while worker_pids(device._session) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker_pids(device._session) == []


def test_a_remote_python_without_numpy_is_named(sshd, numpy_free_python):
    with connect(sshd, python=numpy_free_python) as device, \
            pytest.raises(MissingRuntimeError, match=f"numpy is not installed for {numpy_free_python}"):
        device.probe(timeout=30)


@pytest.mark.parametrize("evil", ["/nonexistent/py; touch {m}", "$(touch {m})", "`touch {m}`", "py' && touch {m} '"])
def test_shell_characters_in_the_python_path_are_not_run(sshd, tmp_path, evil):
    marker = tmp_path / "pwned"
    with connect(sshd, python=evil.format(m=marker)) as device, pytest.raises(RemoteError, match="cannot run python"):
        device.probe(timeout=30)
    assert not marker.exists()


def test_a_wrong_key_is_an_authentication_error(sshd):
    with pytest.raises(AuthenticationError, match=f"{sshd.user}@127.0.0.1:{sshd.port} refused the key"):
        connect(sshd, key=sshd.other_key)
    with pytest.raises(AuthenticationError, match="does not exist"):
        connect(sshd, key=sshd.key + ".absent")


def test_an_unknown_host_key_is_refused_with_the_fix(sshd, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(HostKeyError, match=rf"not in .*ssh-keyscan -p {sshd.port} 127.0.0.1") as info:
        connect(sshd, known_hosts=str(empty))
    assert "SHA256:" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(HostKeyError, match="does not exist"):
        connect(sshd, known_hosts=str(tmp_path / "absent"))


def test_a_changed_host_key_is_refused(sshd, tmp_path):
    other = Path(sshd.other_key + ".pub").read_text().split()
    changed = tmp_path / "known_hosts"
    changed.write_text(f"[127.0.0.1]:{sshd.port} {other[0]} {other[1]}\n")
    with pytest.raises(HostKeyError, match=r"host key of 127.0.0.1:\d+ changed.*ssh-keygen -R"):
        connect(sshd, known_hosts=str(changed))


def test_a_closed_port_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: refused
        start = time.monotonic()
        with pytest.raises(HostUnreachableError, match=f"cannot connect to 127.0.0.1:{port}: connection refused"):
            SshTransport("127.0.0.1", "me", port, connect_timeout=5)
    assert time.monotonic() - start < 2


def test_a_server_that_is_not_ssh_times_out():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        accepted = []
        thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True)
        thread.start()
        start = time.monotonic()
        with pytest.raises(HostUnreachableError, match=f"127.0.0.1:{port}"):
            SshTransport("127.0.0.1", "me", port, connect_timeout=1)
        assert time.monotonic() - start < 4
        for conn in accepted:
            conn.close()


def test_an_unresolvable_host():
    with pytest.raises(HostUnreachableError, match="cannot resolve host 'no-such-host.invalid'"):
        SshTransport("no-such-host.invalid", "me", 22, connect_timeout=2)


def test_open_transport_takes_host_from_the_flag_or_the_profile(sshd):
    rpi4 = load_profile("rpi4")
    with pytest.raises(HostSpecError, match="has no SSH host: pass --host"):
        open_transport(rpi4)
    with open_transport(rpi4, host=sshd.spec, key=sshd.key, known_hosts=sshd.known_hosts,
                        python=sys.executable) as device:
        assert device.probe(timeout=30)["executable"] == sys.executable
    board = DeviceProfile.from_dict({"name": "board", "description": "test", "transport": "ssh", "runtime": "ort",
                                     "threads": 1, "python": sys.executable,
                                     "ssh": {"host": "127.0.0.1", "user": sshd.user, "port": sshd.port}})
    with open_transport(board, key=sshd.key, known_hosts=sshd.known_hosts) as device:
        assert device.address == f"{sshd.user}@127.0.0.1:{sshd.port}" and device.python == sys.executable


def test_an_ssh_config_alias_is_resolved(sshd):
    ssh_dir = Path(os.environ["HOME"], ".ssh")  # a temporary HOME (tests/devices/conftest.py)
    ssh_dir.mkdir()
    (ssh_dir / "config").write_text(f"Host edgebox\n  HostName 127.0.0.1\n  Port {sshd.port}\n"
                                    f"  User {sshd.user}\n  IdentityFile {sshd.key}\n")
    (ssh_dir / "known_hosts").write_text(Path(sshd.known_hosts).read_text())
    with open_transport(load_profile("rpi4"), host="edgebox", python=sys.executable) as device:
        assert device.address == f"{sshd.user}@127.0.0.1:{sshd.port}"
        assert device.probe(timeout=30)["packages"]["numpy"]


def test_a_lost_connection_is_unreachable_not_a_measurement_failure(sshd, conv_onnx):
    device, session = connect(sshd), None
    try:
        device.probe(timeout=30)
        session = device._session
        device._client.get_transport().close()  # the link drops between two jobs
        with pytest.raises(HostUnreachableError, match="connection to .* was lost"):
            device.run_job(make_job(conv_onnx, runs=5, warmup=1), timeout=30)
    finally:
        device.close()
        device.close()  # twice is fine
        if session:
            shutil.rmtree(session, ignore_errors=True)  # the dead connection could not remove it
