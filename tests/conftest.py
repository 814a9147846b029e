"""Shared fixtures: tiny search configs that run in seconds on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

# The tests' networks are tiny: with two OpenMP threads every small op pays a
# synchronisation cost, which is 10-20x slower than one thread when the other
# core is busy (measured: 2.0 s vs 0.1 s for one step of the tiny search).
torch.set_num_threads(1)


@pytest.fixture
def tiny_search_options() -> dict:
    """Options of a search small enough for unit tests (a few seconds)."""
    return dict(subset=96, resolution=16, channels=4, cells=2, nodes=2, projector=(16, 16), epochs=2,
                batch_size=8, checkpoint_every=2, progress=False, seed=3, supernet="full", strategy="darts")


@pytest.fixture(scope="session")
def tiny_finetune_options() -> dict:
    """Fine-tuning of the tiny run on 240 synthetic images at 16 px, 2 epochs (about a second)."""
    return dict(synthetic_size=240, epochs=2, min_steps=0, batch_size=16, warmup_epochs=1, eval_samples=100, progress=False,
                checkpoint_every=2, fraction=0.5, threads=1)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A finished tiny search run directory (arch.json, weights.pt, config.yaml), made once per session."""
    from edgenas.search.config import SearchConfig
    from edgenas.search.runner import run_search

    out = tmp_path_factory.mktemp("tiny-run") / "run"
    run_search(SearchConfig(subset=96, resolution=16, channels=4, cells=2, nodes=2, projector=(16, 16), epochs=2,
                            batch_size=8, checkpoint_every=2, progress=False, seed=3, supernet="full", strategy="darts",
                            out=str(out)))
    return out


# --- a real OpenSSH server on loopback, for the SSH transport (devices) and bench tests -------------------

SSHD = "/usr/sbin/sshd"


class SshServer:
    """A running throwaway sshd: connect as ``user@host:port`` with ``key``, checking ``known_hosts``.

    ``other_key`` is a valid key the server does not accept.
    """

    def __init__(self, host: str, port: int, user: str, key: str, other_key: str, known_hosts: str,
                 host_key_pub: str, log: str) -> None:
        self.host, self.port, self.user = host, port, user
        self.key, self.other_key, self.known_hosts = key, other_key, known_hosts
        self.host_key_pub, self.log = host_key_pub, log

    @property
    def spec(self) -> str:
        """``USER@HOST:PORT`` as ``--host`` takes it."""
        return f"{self.user}@{self.host}:{self.port}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path, comment: str) -> None:
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def _start_sshd(root):
    """Start ``/usr/sbin/sshd`` on 127.0.0.1 with throwaway keys under ``root``; skip when it cannot run here.

    Returns (the process, an :class:`SshServer`). The remote python for tests is ``sys.executable``.
    """
    import getpass
    import os
    import shutil
    import socket
    import subprocess
    import time

    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} is missing (install Debian's openssh-server)")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is missing (install openssh-client)")
    for name in ("host_key", "client_key", "other_key"):
        _keygen(root / name, f"edgenas-test-{name}")
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    try:
        os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege-separation directory
    except OSError:
        pass  # not root: sshd says why below if it needs it
    log = root / "sshd.log"
    last_error = ""
    for _ in range(3):  # the free port may be taken between choosing and binding it
        port = _free_port()
        config = root / "sshd_config"
        config.write_text("\n".join([
            "ListenAddress 127.0.0.1", f"Port {port}", f"HostKey {root / 'host_key'}",
            f"AuthorizedKeysFile {root / 'authorized_keys'}", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "PermitRootLogin prohibit-password", f"PidFile {root / 'sshd.pid'}", "StrictModes no",
            "Subsystem sftp internal-sftp", "LogLevel VERBOSE", "",
        ]))
        proc = subprocess.Popen([SSHD, "-D", "-f", str(config), "-E", str(log)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                up = True
                break
            except OSError:
                time.sleep(0.05)
        if up:
            break
        proc.kill()
        proc.wait(timeout=10)
        lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
        last_error = lines[-1] if lines else f"exit code {proc.returncode}"
    else:
        pytest.skip(f"sshd did not start: {last_error}")
    host_key_pub = (root / "host_key.pub").read_text().split()
    known_hosts = root / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {host_key_pub[0]} {host_key_pub[1]}\n")
    return proc, SshServer("127.0.0.1", port, getpass.getuser(), str(root / "client_key"), str(root / "other_key"),
                           str(known_hosts), f"{host_key_pub[0]} {host_key_pub[1]}", str(log))


def _stop(proc) -> None:
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory):
    """A throwaway sshd on 127.0.0.1 (see :func:`_start_sshd`), for the session."""
    proc, server = _start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def sshd_fleet(tmp_path_factory):
    """Three throwaway sshd on different loopback ports: three SSH "devices" on this machine."""
    started = []
    try:
        for i in range(3):
            started.append(_start_sshd(tmp_path_factory.mktemp(f"sshd-fleet-{i}")))
        yield [server for _, server in started]
    finally:
        for proc, _ in started:
            _stop(proc)
