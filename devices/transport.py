"""Transports: run the bench worker on a device and bring its JSON back.

A transport runs ``python -m bench.worker JOB.json`` (one measurement) or
``python -m bench.worker --probe`` (python, fingerprint, runtime versions) with
the device's own python, one fresh process per job, and returns the JSON
object the worker printed last (see :mod:`bench.worker`):

* :class:`devices.transports.local.LocalTransport`: a subprocess on this machine;
* :class:`devices.transports.ssh.SshTransport`: over SSH (paramiko), the
  ``bench`` package and each job's files copied into a remote temp directory.

Use :func:`open_transport` with a device profile::

    with open_transport(load_profile("rpi4"), host="pi@192.168.1.20") as device:
        print(device.probe()["packages"])
        record = device.run_job(make_job("model.tflite", threads=4), timeout=300)

``run_job`` returns the worker's record, or the worker's own failure record
(``{"error": ..., "error_type": ...}``, exit code 3) so that a sweep can keep it;
everything else (unreachable host, host key, authentication, timeout, a
crashed worker) raises a :class:`devices.errors.TransportError`.
"""

from __future__ import annotations

import importlib
import ipaddress
import json
import math
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from devices.errors import (
    HostSpecError,
    MissingRuntimeError,
    RemoteError,
    TransportError,
)
from devices.profiles import DeviceProfile
from devices.transports import TRANSPORTS

__all__ = [
    "RUNTIME_NEEDS",
    "RUNTIME_PACKAGES",
    "Reach",
    "Transport",
    "missing_runtime",
    "open_device",
    "open_transport",
    "parse_host",
    "worker_json",
]

#: runtime name -> distributions that provide it (as the worker's probe names them)
RUNTIME_PACKAGES: dict[str, tuple[str, ...]] = {
    "ort": ("onnxruntime", "onnxruntime-gpu"),
    "litert": ("ai-edge-litert", "tflite-runtime"),
    "openvino": ("openvino",),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
}

#: runtime name -> distributions it needs besides its own (every one must show in the probe)
RUNTIME_NEEDS: dict[str, tuple[str, ...]] = {"tensorrt": ("polygraphy",)}

# Exit codes of bench.worker.
EXIT_FAILED = 3
EXIT_BAD_JOB = 2

_T = TypeVar("_T", bound="Transport")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?$")
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._@-]*$")


def parse_host(text: str) -> tuple[str | None, str, int | None]:
    """Split ``[USER@]HOST[:PORT]`` into ``(user, host, port)``; absent parts are None.

    IPv6 addresses go in brackets (``pi@[fe80::1%eth0]:2222``).

    Raises:
        HostSpecError: empty parts, a bad port, spaces or shell characters, or a
            bare IPv6 address (which cannot be told apart from a port).
    """
    if not isinstance(text, str) or not text.strip():
        raise HostSpecError("empty host: expected USER@HOST[:PORT]")
    spec = text.strip()
    hint = f"bad host {text!r}: expected USER@HOST[:PORT] (IPv6 as USER@[ADDR]:PORT)"
    user, at, rest = spec.rpartition("@")
    if at and not _USER.match(user):
        raise HostSpecError(f"{hint}: bad user name {user!r}")
    port_text = None
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or (tail and not tail.startswith(":")):
            raise HostSpecError(f"{hint}: unbalanced brackets")
        port_text = tail[1:] if tail else None
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise HostSpecError(f"{hint}: {host!r} in brackets is not an IPv6 address") from None
    else:
        if rest.count(":") > 1:
            raise HostSpecError(f"{hint}: put an IPv6 address in brackets, e.g. [{rest}]")
        host, colon, port_text = rest.partition(":")
        port_text = port_text if colon else None
        if not _HOSTNAME.match(host):
            raise HostSpecError(f"{hint}: bad host name {host!r}")
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise HostSpecError(f"{hint}: port must be 1-65535, got {port_text!r}")
        port = int(port_text)
    return (user or None), host, port


def worker_json(stdout: str) -> dict[str, Any] | None:
    """The last line of ``stdout`` that is a JSON object, else None (runtimes may print above it)."""
    for line in reversed(stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def missing_runtime(probe: dict[str, Any], runtime: str) -> bool:
    """True when none of the distributions of ``runtime`` shows in a probe's ``packages``, or one it needs
    besides (:data:`RUNTIME_NEEDS`: TensorRT's runner builds engines through polygraphy) is missing."""
    packages = probe.get("packages") or {}
    return not any(packages.get(name) for name in RUNTIME_PACKAGES.get(runtime, (runtime,))) \
        or not all(packages.get(name) for name in RUNTIME_NEEDS.get(runtime, ()))


class Transport(ABC):
    """Runs the bench worker on one device; a context manager (``close`` on exit).

    Attributes:
        name: ``"local"`` or ``"ssh"``.
        address: where the worker runs, for messages (``local``, ``pi@host:22``).
        python: the interpreter that runs the worker there.
    """

    name: ClassVar[str]

    def __init__(self, python: str, address: str) -> None:
        if not python or not isinstance(python, str):
            raise TransportError(f"no python to run the bench worker on {address}")
        self.python = python
        self.address = address

    @classmethod
    @abstractmethod
    def from_profile(cls: type[_T], profile: DeviceProfile, host: str | None = None, key: str | None = None,
                     known_hosts: str | None = None, python: str | None = None,
                     connect_timeout: float = 10) -> _T:
        """The transport to ``profile``'s device, connected; the arguments are :func:`open_transport`'s."""

    def probe(self, timeout: float = 60) -> dict[str, Any]:
        """``python -m bench.worker --probe`` on the device: its python, fingerprint and package versions.

        Raises:
            MissingRuntimeError: the device's python has no numpy.
            RemoteError: the python could not be run or the worker crashed.
            RemoteTimeoutError: no answer within ``timeout`` seconds.
        """
        _check_timeout(timeout)
        code, out, err = self._worker(["--probe"], timeout)
        obj = worker_json(out)
        if code == 0 and obj is not None and "fingerprint" in obj:
            return obj
        if code == EXIT_FAILED and obj is not None and obj.get("error"):
            raise MissingRuntimeError(f"{obj['error']} (on {self.address})")
        raise self._crash(code, err, "probe")

    def run_job(self, job: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
        """Run one measurement job (see :mod:`bench.worker`) in a fresh worker process on the device.

        Args:
            job: a job dict, passed through as it is; its file paths are local to this machine.
            timeout: seconds the worker may run (copying files is not counted); it is killed after.

        Returns:
            The worker's record, or its failure record ``{"error", "error_type"}``
            when the measurement itself failed (exit code 3: a corrupt artifact, a
            missing runtime or numpy on the device, ...).

        Raises:
            TransportError: a file of the job is missing here, or it cannot be copied.
            RemoteTimeoutError: the worker ran past ``timeout`` (it was killed).
            RemoteError: the worker rejected the job, could not start or crashed.
            HostUnreachableError: the connection to the device was lost.
        """
        from bench.worker import job_files

        _check_timeout(timeout)
        if not isinstance(job, dict) or not job.get("artifact"):
            raise TransportError("a job is a dict with an 'artifact' (see bench.worker.make_job)")
        for path in job_files(job):
            if not os.path.isfile(path):
                raise TransportError(f"job file {path} does not exist on this machine")
        code, out, err = self._run_job(job, timeout)
        obj = worker_json(out)
        if code == 0 and obj is not None and "error" not in obj:
            return obj
        if code == EXIT_FAILED and obj is not None and obj.get("error"):
            return obj
        if code == EXIT_BAD_JOB and obj is not None and obj.get("error"):
            raise RemoteError(f"the bench worker on {self.address} rejected the job: {obj['error']}")
        raise self._crash(code, err, "job")

    def close(self) -> None:
        """Release the connection and remove what was copied to the device; safe to call twice."""

    def __enter__(self: _T) -> _T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r}, python={self.python!r})"

    @abstractmethod
    def _worker(self, args: list[str], timeout: float) -> tuple[int, str, str]:
        """Run ``python -m bench.worker *args`` on the device: ``(exit code, stdout, stderr)``."""

    @abstractmethod
    def _run_job(self, job: dict[str, Any], timeout: float) -> tuple[int, str, str]:
        """Stage ``job`` (and its files) on the device, run the worker on it, clean up."""

    def _crash(self, code: int, stderr: str, what: str) -> RemoteError:
        reason = _last_line(stderr) or "no output"
        if code in (126, 127):
            return RemoteError(f"cannot run python {self.python!r} on {self.address}: {reason}")
        status = "killed by a signal" if code < 0 or code > 128 else f"exit {code}"
        return RemoteError(f"the bench worker ({what}) crashed on {self.address} with {self.python} ({status}): {reason}")


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise TransportError(f"timeout must be a positive number of seconds, got {timeout!r}")


def open_transport(profile: DeviceProfile, host: str | None = None, key: str | None = None,
                   known_hosts: str | None = None, python: str | None = None,
                   connect_timeout: float = 10) -> Transport:
    """The transport of ``profile``; an SSH transport is connected (and its host key checked) here.

    Args:
        profile: the device (``transport`` says local or ssh; ``[ssh]`` and ``python`` say how).
        host: ``[USER@]HOST[:PORT]`` overriding the profile's ``[ssh]`` table (ssh only).
        key: private key file (ssh only); default: ssh-agent and the keys in ``~/.ssh``.
        known_hosts: file the host key is checked against (ssh only); default ``~/.ssh/known_hosts``.
        python: the device's interpreter for the worker; default the profile's
            (an empty profile value on a local device: the python running this code).
        connect_timeout: seconds for connecting, the SSH handshake and authentication.

    Raises:
        HostSpecError: a malformed ``host``, or an SSH device with no host anywhere.
        TransportError: SSH options given for a local device, an unknown transport, or paramiko missing.
        HostUnreachableError, HostKeyError, AuthenticationError: see :class:`~devices.transports.ssh.SshTransport`.
    """
    if profile.transport not in TRANSPORTS:
        raise TransportError(f"device {profile.name!r}: no transport called {profile.transport!r} "
                             f"(known: {', '.join(TRANSPORTS)})")
    module, cls = TRANSPORTS.get(profile.transport).split(":")
    transport: type[Transport] = getattr(importlib.import_module(module), cls)
    return transport.from_profile(profile, host=host, key=key, known_hosts=known_hosts, python=python,
                                  connect_timeout=connect_timeout)


@dataclass(frozen=True)
class Reach:
    """Which device, and how to reach it: the ``--device --host --key --known-hosts --python`` options."""

    device: str = "local"
    host: str | None = None
    key: str | None = None
    known_hosts: str | None = None
    python: str | None = None

    def open(self, connect_timeout: float = 10) -> tuple[DeviceProfile, Transport]:
        """``(profile, transport)``; see :func:`open_device`."""
        return open_device(self.device, self.host, self.key, self.known_hosts, self.python, connect_timeout)


def open_device(device: str, host: str | None = None, key: str | None = None, known_hosts: str | None = None,
                python: str | None = None, connect_timeout: float = 10) -> tuple[DeviceProfile, Transport]:
    """``(profile, transport)`` of the device profile named ``device``, reached with the command line's options.

    Raises:
        UnknownDeviceError: no profile of that name; the errors of :func:`open_transport`.
    """
    from devices.profiles import load_profile

    profile = load_profile(device)
    return profile, open_transport(profile, host=host, key=key, known_hosts=known_hosts, python=python,
                                   connect_timeout=connect_timeout)
