"""Facts about the machine this process runs on, read with the stdlib only.

Used to fill the hardware fields a ``probe_host = true`` profile leaves unset
(the shipped ``local`` profile). Every reader returns None when the fact cannot
be read, rather than guessing; memory bandwidth is never readable and stays None.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from typing import Any

__all__ = ["probe_host"]


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
