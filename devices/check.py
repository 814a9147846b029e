"""``edgenas devices check`` as a function: reach a device, probe its python and runtimes, say what is missing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from devices.profiles import DeviceProfile
from devices.transport import RUNTIME_PACKAGES, missing_runtime, open_transport

__all__ = ["DeviceCheck", "check_device"]


@dataclass(frozen=True)
class DeviceCheck:
    """What a probe of a device found.

    Attributes:
        profile: the device profile checked.
        transport, address: how it was reached (``ssh``, ``pi@10.0.0.7:22``).
        probe: the worker's probe (python, executable, packages, fingerprint).
        problem: why the device cannot run the bench (its default runtime is missing), else None.
        warnings: disagreements that do not stop it (the profile's arch is not the device's).
    """

    profile: DeviceProfile
    transport: str
    address: str
    probe: dict[str, Any]
    problem: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.profile.name, "transport": self.transport, "address": self.address, "ok": self.ok,
                "problem": self.problem, "warnings": list(self.warnings), **self.probe}


def check_device(profile: DeviceProfile, host: str | None = None, key: str | None = None,
                 known_hosts: str | None = None, python: str | None = None, timeout: float = 30.0) -> DeviceCheck:
    """Reach ``profile``'s device and run the bench worker's probe there.

    Raises:
        TransportError (and subclasses): the device cannot be reached, or its python cannot run the probe.
        MissingRuntimeError: the device's python has no numpy.
    """
    with open_transport(profile, host=host, key=key, known_hosts=known_hosts, python=python,
                        connect_timeout=timeout) as transport:
        probe = transport.probe(timeout=timeout)
        address, name = transport.address, transport.name
    problem = None
    if missing_runtime(probe, profile.runtime):
        packages = " or ".join(RUNTIME_PACKAGES[profile.runtime])
        problem = (f"device {profile.name!r}: its default runtime {profile.runtime!r} ({packages}) is not installed "
                   f"for {probe.get('executable') or transport.python} on {address}; "
                   f"pip install {RUNTIME_PACKAGES[profile.runtime][0]} there")
    warnings = []
    arch = (probe.get("fingerprint") or {}).get("arch")
    if profile.arch and arch and profile.arch != arch:
        warnings.append(f"the profile says arch {profile.arch}, the device reports {arch}")
    return DeviceCheck(profile, name, address, probe, problem, tuple(warnings))
