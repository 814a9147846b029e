"""Energy per inference where the device exposes it: Jetson power rails (``tegrastats``), x86 RAPL counters.

stdlib only (this runs on the board). :func:`open_meter` returns the meter this
device can read, or None; a record then says ``"energy": null`` (unknown), never zero.

A meter watches a phase of its own, after the latency runs (so that sampling
never disturbs the timing): ``idle_seconds`` with nothing running, then the
inference call repeated for ``seconds``. Both figures are reported, since the
counters see the whole device, not the process:

* ``mj_per_inference``: all the energy the device drew during the phase, per call;
* ``active_mj_per_inference``: the same less the idle power over the phase's duration:
  what running the model added.

Sources:

* **tegrastats** (Jetson, on PATH): sampled every ``interval_ms``; the board's input
  rail (``VDD_IN`` on Orin and Xavier NX, ``POM_5V_IN`` on Nano and TX2) when it
  reports one, else the sum of every rail it reports. Lines look like
  ``... VDD_IN 4937mW/5012mW VDD_CPU_GPU_CV 593mW/601mW ...`` (JetPack 5/6) or
  ``... POM_5V_IN 2557/2557 POM_5V_GPU 0/0 ...`` (JetPack 4): current/average.
* **RAPL** (``/sys/class/powercap/intel-rapl:N/energy_uj``, the package domains;
  readable by root on most kernels since 2020): the counters' difference over the
  phase, with their wrap-around at ``max_energy_range_uj``. It covers the CPU
  packages (cores, caches, memory controller), not DRAM or the board.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BOARD_RAILS", "EnergyReading", "RaplMeter", "TegrastatsMeter", "open_meter", "parse_tegrastats"]

RAPL_ROOT = Path("/sys/class/powercap")
#: tegrastats rails that are the whole board's input, by preference
BOARD_RAILS = ("VDD_IN", "POM_5V_IN")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*)\s+(\d+)(?:mW)?/(\d+)(?:mW)?\b")


@dataclass(frozen=True)
class EnergyReading:
    """One energy phase: what the meter saw while the model ran ``inferences`` times in ``seconds``."""

    source: str
    scope: str
    inferences: int
    seconds: float
    joules: float
    idle_watts: float | None

    def to_record(self) -> dict[str, Any]:
        power = self.joules / self.seconds
        active = None if self.idle_watts is None else max(0.0, self.joules - self.idle_watts * self.seconds)
        return {
            "source": self.source, "scope": self.scope, "inferences": self.inferences,
            "seconds": round(self.seconds, 4), "power_w": round(power, 4),
            "idle_power_w": None if self.idle_watts is None else round(self.idle_watts, 4),
            "mj_per_inference": round(1e3 * self.joules / self.inferences, 6),
            "active_mj_per_inference": None if active is None else round(1e3 * active / self.inferences, 6),
        }


def _repeat(call: Callable[[], object], seconds: float) -> tuple[int, float]:
    """Run ``call`` until ``seconds`` have passed (whole calls); (calls, elapsed seconds)."""
    start = time.perf_counter()
    n = 0
    while True:
        call()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n, elapsed


def parse_tegrastats(line: str) -> dict[str, float]:
    """The power rails of one tegrastats line: ``{rail: current watts}`` (empty when it reports none)."""
    return {name: int(now) / 1e3 for name, now, _ in _RAIL.findall(line)
            if name.startswith(("VDD", "POM", "VIN"))}


def board_power(rails: dict[str, float]) -> tuple[float, str] | None:
    """(watts, which rail) of a tegrastats sample: the board's input rail, else the sum of all."""
    for name in BOARD_RAILS:
        if name in rails:
            return rails[name], f"board input rail {name}"
    if rails:
        return sum(rails.values()), "sum of the rails tegrastats reports (" + ", ".join(sorted(rails)) + ")"
    return None


class TegrastatsMeter:
    """Mean power from ``tegrastats --interval`` samples, times the phase's duration."""

    source = "tegrastats"

    def __init__(self, executable: str, interval_ms: int = 50) -> None:
        self.executable, self.interval_ms = executable, interval_ms

    def measure(self, call: Callable[[], object], seconds: float = 2.0, idle_seconds: float = 1.0
                ) -> EnergyReading | None:
        samples: list[tuple[float, float, str]] = []
        try:
            proc = subprocess.Popen([self.executable, "--interval", str(self.interval_ms)], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return None

        def read() -> None:
            for line in proc.stdout:  # type: ignore[union-attr]
                power = board_power(parse_tegrastats(line))
                if power is not None:
                    samples.append((time.perf_counter(), *power))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            time.sleep(max(idle_seconds, 3 * self.interval_ms / 1e3))
            idle_end = time.perf_counter()
            run_start = time.perf_counter()
            n, elapsed = _repeat(call, max(seconds, 3 * self.interval_ms / 1e3))
            run_end = run_start + elapsed
            time.sleep(self.interval_ms / 1e3)  # the sample that covers the end of the phase
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            reader.join(timeout=5)
        idle = [w for t, w, _ in samples if t <= idle_end]
        active = [w for t, w, _ in samples if run_start < t <= run_end + self.interval_ms / 1e3]
        if not active:
            return None
        watts = sum(active) / len(active)
        return EnergyReading(self.source, samples[-1][2], n, elapsed, watts * elapsed,
                             sum(idle) / len(idle) if idle else None)


class RaplMeter:
    """The difference of the RAPL package counters over the phase (wrap-around handled)."""

    source = "rapl"

    def __init__(self, zones: list[Path]) -> None:
        self.zones = zones

    def _read(self) -> list[int]:
        return [int((z / "energy_uj").read_text()) for z in self.zones]

    def _joules(self, before: list[int], after: list[int]) -> float:
        total = 0
        for zone, b, a in zip(self.zones, before, after):
            if a < b:  # the counter wrapped
                try:
                    a += int((zone / "max_energy_range_uj").read_text())
                except (OSError, ValueError):
                    return float("nan")
            total += a - b
        return total / 1e6

    def measure(self, call: Callable[[], object], seconds: float = 2.0, idle_seconds: float = 1.0
                ) -> EnergyReading | None:
        try:
            t0, e0 = time.perf_counter(), self._read()
            time.sleep(idle_seconds)
            t1, e1 = time.perf_counter(), self._read()
            n, elapsed = _repeat(call, seconds)
            e2 = self._read()
        except (OSError, ValueError):
            return None
        idle_j, run_j = self._joules(e0, e1), self._joules(e1, e2)
        if run_j != run_j or run_j <= 0:  # NaN: a wrap we could not undo; 0: a counter that does not move
            return None
        names = []
        for z in self.zones:
            try:
                names.append((z / "name").read_text().strip())
            except OSError:
                names.append(z.name)
        idle_w = idle_j / (t1 - t0) if idle_seconds > 0 and idle_j == idle_j else None
        return EnergyReading(self.source, "RAPL " + ", ".join(names) + " (the CPU packages, every process)", n,
                             elapsed, run_j, idle_w)


def rapl_zones(root: Path = RAPL_ROOT) -> list[Path]:
    """The readable RAPL package zones (``intel-rapl:N``; their sub-zones are inside them)."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue
        try:
            int((zone / "energy_uj").read_text())
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


def open_meter(rapl_root: Path = RAPL_ROOT) -> TegrastatsMeter | RaplMeter | None:
    """The energy meter this device offers: tegrastats on a Jetson, else readable RAPL counters, else None."""
    executable = shutil.which("tegrastats")
    if executable:
        return TegrastatsMeter(executable)
    zones = rapl_zones(rapl_root)
    return RaplMeter(zones) if zones else None
