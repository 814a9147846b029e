"""Facts about the machine this process runs on, read with the stdlib only.

Two users:

* :func:`fingerprint`: the device fingerprint in every bench record (CPU model,
  cores, OS, kernel, board, CPU governor and clocks, temperatures, load), read
  by the worker *on the device* just before it measures;
* :func:`probe_host`: the hardware fields a ``probe_host = true`` device profile
  leaves unset (the shipped ``local`` profile).

Every reader returns None when the fact cannot be read, rather than guessing;
memory bandwidth is never readable and stays None.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["fingerprint", "package_versions", "probe_host"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def _cpuinfo_fields(text: str) -> dict[str, str]:
    """First value of each ``key : value`` line of /proc/cpuinfo (keys lower-cased)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip().lower(), value.strip())
    return fields


def _cpu_model(info: dict[str, str]) -> str | None:
    # x86 says "model name"; ARM boards usually say "Model" (the board) or "Hardware".
    for key in ("model name", "model", "hardware", "cpu model"):
        if info.get(key):
            return info[key]
    return platform.processor() or None


def _clock_ghz(info: dict[str, str]) -> float | None:
    # Prefer the peak clock from cpufreq; /proc/cpuinfo's "cpu MHz" is the current one.
    max_khz = _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    if max_khz and max_khz.strip().isdigit():
        return round(int(max_khz) / 1e6, 3)
    try:
        return round(float(info["cpu mhz"]) / 1e3, 3)
    except (KeyError, ValueError):
        return None


def _simd(info: dict[str, str]) -> tuple[str | None, int | None]:
    flags = set((info.get("flags") or info.get("features") or "").split())
    for flag, name, bits in (("avx512f", "AVX-512", 512), ("avx2", "AVX2", 256), ("avx", "AVX", 256),
                             ("sse2", "SSE2", 128), ("asimd", "NEON", 128), ("neon", "NEON", 128)):
        if flag in flags:
            return name, bits
    if platform.machine().lower() in ("aarch64", "arm64"):
        return "NEON", 128  # NEON (ASIMD) is mandatory in ARMv8-A
    return None, None


def _memory_mb() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    except (ValueError, OSError, AttributeError):  # not on every OS (macOS lacks SC_PHYS_PAGES)
        return None


def _os_name() -> str:
    release = _read("/etc/os-release") or ""
    for line in release.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.platform()


def probe_host() -> dict[str, Any]:
    """Hardware facts of this machine, keyed like :class:`devices.profiles.DeviceProfile` fields.

    Returns:
        ``arch``, ``cpu``, ``cores``, ``clock_ghz`` (peak if cpufreq is
        readable, else current), ``simd``, ``simd_width_bits``, ``memory_mb``,
        ``os``, ``python``; values that cannot be read are None.
    """
    info = _cpuinfo_fields(_read("/proc/cpuinfo") or "")
    simd, simd_bits = _simd(info)
    return {
        "arch": platform.machine() or None,
        "cpu": _cpu_model(info),
        "cores": os.cpu_count(),
        "clock_ghz": _clock_ghz(info),
        "simd": simd,
        "simd_width_bits": simd_bits,
        "memory_mb": _memory_mb(),
        "os": _os_name(),
        "python": sys.executable or None,
    }


def _first_line_of(path: str) -> str | None:
    text = _read(path)
    return text.strip().splitlines()[0].strip("\x00 ") if text and text.strip() else None


def _board() -> str | None:
    """The board's model on ARM boards (Raspberry Pi, Jetson) from the device tree, else None."""
    return _first_line_of("/proc/device-tree/model") or _first_line_of("/sys/firmware/devicetree/base/model")


def _governors() -> list[str]:
    """The distinct cpufreq scaling governors of all CPUs (empty where cpufreq is not exposed)."""
    found = []
    for path in sorted(Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_governor")):
        value = _first_line_of(str(path))
        if value and value not in found:
            found.append(value)
    return found


def _cur_mhz() -> int | None:
    khz = _first_line_of("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    return int(khz) // 1000 if khz and khz.isdigit() else None


def _temperatures() -> dict[str, float]:
    """Thermal zones in degrees C, keyed by zone type (e.g. ``cpu-thermal`` on a Raspberry Pi)."""
    temps: dict[str, float] = {}
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*")):
        raw = _first_line_of(str(zone / "temp"))
        if raw is None or not raw.lstrip("-").isdigit():
            continue
        name = _first_line_of(str(zone / "type")) or zone.name
        temps[name if name not in temps else f"{name}-{zone.name}"] = int(raw) / 1000
    return temps


def package_versions(names: tuple[str, ...] = ("numpy", "onnxruntime", "onnxruntime-gpu", "openvino", "ai-edge-litert",
                                                "tflite-runtime", "tensorrt", "tensorrt-cu12",
                                                "tensorrt-cu13", "polygraphy")) -> dict[str, str | None]:
    """Installed versions of the runtime packages (None when absent), without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def fingerprint() -> dict[str, Any]:
    """The device fingerprint written into every bench record.

    Returns:
        ``hostname``, ``arch``, ``cpu``, ``board`` (device-tree model on ARM
        boards), ``cores``, ``clock_ghz`` (peak), ``cur_mhz``, ``governor``
        (comma-joined when CPUs differ), ``temperatures_c``, ``load_avg_1m``,
        ``memory_mb``, ``os``, ``kernel``, ``python``; unreadable values are None.
    """
    info = _cpuinfo_fields(_read("/proc/cpuinfo") or "")
    try:
        load = round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        load = None
    governors = _governors()
    return {
        "hostname": platform.node() or None,
        "arch": platform.machine() or None,
        "cpu": _cpu_model(info),
        "board": _board(),
        "cores": os.cpu_count(),
        "clock_ghz": _clock_ghz(info),
        "cur_mhz": _cur_mhz(),
        "governor": ",".join(governors) or None,
        "temperatures_c": _temperatures(),
        "load_avg_1m": load,
        "memory_mb": _memory_mb(),
        "os": _os_name(),
        "kernel": platform.release() or None,
        "python": platform.python_version(),
    }
