"""Device profiles: what a target board is and how to reach it, as TOML data files.

Search path (the first directory holding ``<name>.toml`` wins, so a user file
overrides a shipped one of the same name; ``source`` says which was read):

1. each directory of ``$EDGENAS_DEVICES_DIR`` (``os.pathsep``-separated);
2. ``$XDG_CONFIG_HOME/edgenas/devices`` (default ``~/.config/edgenas/devices``);
3. the profiles shipped in ``devices/profiles/``.

A profile file (``schema_version = 1``)::

    name = "rpi4"                      # must equal the file's stem
    description = "Raspberry Pi 4 Model B"
    transport = "ssh"                  # "local" or "ssh"
    runtime = "litert"                 # default runtime: ort, litert or openvino
    threads = 4                        # default inference threads
    arch = "aarch64"
    cpu = "Cortex-A72"
    cores = 4
    clock_ghz = 1.5                    # peak CPU clock, GHz
    simd = "NEON"
    simd_width_bits = 128              # vector register width, bits
    memory_mb = 4096
    mem_bandwidth_gbs = 12.8           # theoretical DRAM peak, GB/s
    gpu = "VideoCore VI"               # omit when there is none
    os = "Raspberry Pi OS 64-bit"
    python = "python3"                 # interpreter that runs the bench runner
    notes = ["...", "..."]             # known limits, published facts
    probe_host = false                 # true: fill unset hardware fields from this machine
    [ssh]
    host = ""                          # empty: pass --host on the command line
    user = ""                          # empty: your ssh config / local user
    port = 22

Only the stdlib is imported here (``tomllib``; ``tomli`` on Python 3.10): this
package runs where torch and edgenas are absent.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from devices.errors import DeviceProfileError, UnknownDeviceError, close_matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "SCHEMA_VERSION",
    "DeviceProfile",
    "SshSettings",
    "list_profiles",
    "load_profile",
    "load_profile_file",
    "profile_dirs",
]

SCHEMA_VERSION = 1
SHIPPED_DIR = Path(__file__).resolve().parent / "profiles"
ENV_DIRS = "EDGENAS_DEVICES_DIR"

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# Filled from the host when a profile sets probe_host = true.
_PROBED_FIELDS = ("arch", "cpu", "cores", "clock_ghz", "simd", "simd_width_bits", "memory_mb", "os", "python")


@dataclass(frozen=True)
class SshSettings:
    """How to reach a board over SSH; empty strings mean "supplied at run time".

    Attributes:
        host: host name or address; empty for shipped profiles (pass ``--host``).
        user: login; empty means the SSH config's or the local user name.
        port: TCP port, 1-65535.
    """

    host: str = ""
    user: str = ""
    port: int = 22

    def __post_init__(self) -> None:
        for name in ("host", "user"):
            if not isinstance(getattr(self, name), str):
                raise DeviceProfileError(f"ssh.{name} must be a string, got {getattr(self, name)!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise DeviceProfileError(f"ssh.port must be an int in 1..65535, got {self.port!r}")


@dataclass(frozen=True)
class DeviceProfile:
    """One target device: hardware facts, default runtime, how to reach it.

    Hardware fields are None where unknown. ``clock_ghz`` (peak CPU clock,
    GHz), ``simd_width_bits`` (vector width, bits) and ``mem_bandwidth_gbs``
    (theoretical DRAM peak, GB/s) feed the analytic latency model.

    Attributes:
        runtime_options: default runtime settings per runtime (``{"ort": {"providers": "auto"}}``),
            what ``--option KEY=VALUE`` sets; the command line's win.
        probed: names of the fields read from this machine at load time
            (``probe_host = true``), so that nobody mistakes them for data.
        source: the file this profile was read from ("" if built in code).

    Raises:
        DeviceProfileError: a field has the wrong type or an out-of-range value.
    """

    name: str
    description: str
    transport: str
    runtime: str
    threads: int | None = None
    arch: str | None = None
    cpu: str | None = None
    cores: int | None = None
    clock_ghz: float | None = None
    simd: str | None = None
    simd_width_bits: int | None = None
    memory_mb: int | None = None
    mem_bandwidth_gbs: float | None = None
    gpu: str | None = None
    os: str | None = None
    python: str = "python3"
    ssh: SshSettings = field(default_factory=SshSettings)
    notes: tuple[str, ...] = ()
    runtime_options: dict[str, dict[str, str]] = field(default_factory=dict)
    probe_host: bool = False
    probed: tuple[str, ...] = ()
    source: str = ""
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        where = f"device {self.name!r}: "
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DeviceProfileError(
                f"device name must be lower-case letters, digits, '.', '_' or '-', got {self.name!r}"
            )
        if self.schema_version != SCHEMA_VERSION:
            raise DeviceProfileError(
                where + f"schema_version {self.schema_version!r} is not supported (this build reads {SCHEMA_VERSION})"
            )
        for name in ("description", "transport", "runtime", "python"):
            if not isinstance(getattr(self, name), str):
                raise DeviceProfileError(where + f"{name} must be a string, got {getattr(self, name)!r}")
        for name in ("arch", "cpu", "simd", "gpu", "os"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise DeviceProfileError(where + f"{name} must be a string, got {value!r}")
        from bench.runtimes.base import RUNTIMES  # numpy, so only when a profile is read
        from devices.transports import TRANSPORTS

        for field_name, registry in (("transport", TRANSPORTS), ("runtime", RUNTIMES)):
            value = getattr(self, field_name)
            if value not in registry:
                raise DeviceProfileError(where + f"{field_name} {value!r} is not one of {', '.join(registry)}"
                                         + close_matches(value, registry))
        for name in ("threads", "cores", "simd_width_bits", "memory_mb"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise DeviceProfileError(where + f"{name} must be a positive int, got {value!r}")
        for name in ("clock_ghz", "mem_bandwidth_gbs"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
                raise DeviceProfileError(where + f"{name} must be a positive number, got {value!r}")
        if not isinstance(self.ssh, SshSettings):
            raise DeviceProfileError(where + f"ssh must be SshSettings, got {type(self.ssh).__name__}")
        if self.transport == "local" and (self.ssh.host or self.ssh.user):
            raise DeviceProfileError(where + "a local device takes no [ssh] host or user")
        if not isinstance(self.notes, tuple) or not all(isinstance(n, str) for n in self.notes):
            raise DeviceProfileError(where + "notes must be a list of strings")
        if not isinstance(self.runtime_options, dict):
            raise DeviceProfileError(where + "runtime_options must be a table of tables ([runtime_options.ort])")
        for runtime, settings in self.runtime_options.items():
            if runtime not in RUNTIMES:
                raise DeviceProfileError(where + f"runtime_options.{runtime}: no runtime {runtime!r} (known: "
                                         f"{', '.join(RUNTIMES)})" + close_matches(runtime, RUNTIMES))
            if not isinstance(settings, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                         for k, v in settings.items()):
                raise DeviceProfileError(where + f"runtime_options.{runtime} must map setting names to strings")
        if not isinstance(self.probe_host, bool):
            raise DeviceProfileError(where + f"probe_host must be true or false, got {self.probe_host!r}")
        if self.probe_host and self.transport != "local":
            raise DeviceProfileError(where + "probe_host = true reads this machine, so it needs transport = 'local'")
        if self.threads is None and not self.probe_host:
            raise DeviceProfileError(where + "threads is required (only a probe_host profile may leave it unset)")

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-ready dict; ``notes`` and ``probed`` become lists."""
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["probed"] = list(self.probed)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> DeviceProfile:
        """Build a profile from a TOML-shaped dict (``[ssh]`` a sub-table).

        Raises:
            DeviceProfileError: unknown keys (close matches listed) or bad values.
        """
        if not isinstance(data, dict):
            raise DeviceProfileError(f"a device profile must be a table, got {type(data).__name__}")
        data = dict(data)  # never mutate the caller's dict
        prefix = f"{source}: " if source else ""
        allowed = {f.name for f in fields(cls)} - {"probed", "source"}
        for key in data:
            if key not in allowed:
                raise DeviceProfileError(prefix + f"unknown key {key!r}" + close_matches(key, allowed))
        missing = [key for key in ("name", "description", "transport", "runtime") if key not in data]
        if missing:
            raise DeviceProfileError(prefix + f"missing required key(s): {', '.join(missing)}")
        ssh = data.pop("ssh", {})
        if not isinstance(ssh, dict):
            raise DeviceProfileError(prefix + "ssh must be a table ([ssh])")
        ssh_allowed = {f.name for f in fields(SshSettings)}
        for key in ssh:
            if key not in ssh_allowed:
                raise DeviceProfileError(prefix + f"unknown key ssh.{key!r}" + close_matches(key, ssh_allowed))
        notes = data.pop("notes", ())
        if not isinstance(notes, (list, tuple)):
            raise DeviceProfileError(prefix + "notes must be a list of strings")
        try:
            return cls(**data, ssh=SshSettings(**ssh), notes=tuple(notes), source=source)
        except DeviceProfileError as exc:
            raise DeviceProfileError(prefix + str(exc)) from None


def profile_dirs() -> list[Path]:
    """The directories searched for ``<name>.toml``, highest precedence first."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p]
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    dirs.append(Path(config_home) / "edgenas" / "devices")
    dirs.append(SHIPPED_DIR)
    return dirs


def _profile_files(dirs: list[Path] | None) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in profile_dirs() if dirs is None else dirs:
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)  # earlier directories take precedence
    return found


def list_profiles(dirs: list[Path] | None = None) -> list[str]:
    """Names of every profile on the search path (see :func:`profile_dirs`), sorted."""
    return sorted(_profile_files(dirs))


def load_profile_file(path: str | os.PathLike) -> DeviceProfile:
    """Read and validate one profile file; hardware facts are probed if it asks.

    Raises:
        DeviceProfileError: unreadable file, invalid TOML, unknown keys, bad
            values, or a ``name`` that differs from the file's stem.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise DeviceProfileError(f"cannot read device profile {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DeviceProfileError(f"{path}: invalid TOML: {exc}") from None
    profile = DeviceProfile.from_dict(data, source=str(path))
    if profile.name != path.stem:
        raise DeviceProfileError(f"{path}: name {profile.name!r} differs from the file name {path.stem!r}")
    return _probe(profile) if profile.probe_host else profile


def _probe(profile: DeviceProfile) -> DeviceProfile:
    """Fill the unset hardware fields of ``profile`` from this machine."""
    from devices.host import probe_host

    facts = probe_host()
    updates: dict[str, Any] = {}
    for name in _PROBED_FIELDS:
        # "python" has a non-None default, so an empty string marks it unset.
        if getattr(profile, name) in (None, "") and facts.get(name) is not None:
            updates[name] = facts[name]
    cores = updates.get("cores", profile.cores)
    if profile.threads is None and cores is not None:
        updates["threads"] = cores
    return replace(profile, **updates, probed=tuple(sorted(updates)))


def load_profile(name: str, dirs: list[Path] | None = None) -> DeviceProfile:
    """Load the profile called ``name`` from the search path.

    Args:
        name: profile name, e.g. ``rpi4`` (see :func:`list_profiles`).
        dirs: directories to search instead of :func:`profile_dirs` (tests).

    Raises:
        UnknownDeviceError: no such profile; close matches and the searched
            directories are named.
        DeviceProfileError: the file is malformed.
    """
    files = _profile_files(dirs)
    if name not in files:
        searched = ", ".join(str(d) for d in (profile_dirs() if dirs is None else dirs))
        known = ", ".join(sorted(files)) or "none"
        raise UnknownDeviceError(
            f"unknown device {name!r}{close_matches(name, files)} (known: {known}; searched {searched})"
        )
    return load_profile_file(files[name])
