"""Measuring for latency tables: each block, or each whole network, exported alone and timed on the device.

Every artifact is exported with the format's own exporter (no parity check:
these are timing models with random weights, BN folded) and measured by the
bench worker through the device's transport, in a fresh process each.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import ConfigError
from edgenas.latency.blocks import key_module
from edgenas.latency.keys import empty_keys, parse_key

__all__ = ["Timing", "measure_blocks", "measure_specs", "table_entries"]


@dataclass(frozen=True)
class Timing:
    """How each table measurement is timed on the device: untimed warm-up runs, timed runs, seconds allowed."""

    warmup: int = 30
    runs: int = 200
    timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or not self.timeout > 0:
            raise ConfigError(f"timing needs warm-up >= 0, runs >= 1 and a positive timeout, got {self}")


def _export_one(module, shape, runtime: str, precision: str, out_dir: Path, stem: str) -> Path:
    """Export one frozen module for ``runtime``; returns the main artifact file."""
    import numpy as np

    from bench.runtimes.base import format_of_runtime
    from exporters.base import get_exporter
    from exporters.freeze import freeze
    from exporters.spec import InputSpec

    channels = shape[1]
    spec = InputSpec(shape=tuple(shape), mean=(0.0,) * channels, std=(1.0,) * channels)
    calib = np.random.default_rng(0).standard_normal((32, *shape[1:])).astype(np.float32) \
        if precision == "int8" else None
    files = get_exporter(format_of_runtime(runtime)).export(freeze(module), spec, precision, out_dir, stem,
                                                            calib=calib)
    return files[0]


def _time(path: Path, run_job, runtime: str, threads: int, timing: Timing) -> dict:
    from bench.worker import make_job

    record = run_job(make_job(path, runtime=runtime, threads=threads, warmup=timing.warmup, runs=timing.runs),
                     timing.timeout)
    if "error" in record:
        raise ConfigError(f"measuring {path.name} failed on the device: {record['error']}")
    return record


def measure_specs(specs: Sequence, run_job, runtime: str = "ort", precision: str = "fp32", threads: int = 1,
                  timing: Timing = Timing(), progress: Callable[[], None] = lambda: None) -> list[float]:
    """Measured p50 (ms) of each whole network (``ArchSpec`` or ``EvolvedSpec``, random weights) on the device."""
    from edgenas.models import build

    out = []
    with tempfile.TemporaryDirectory(prefix="edgenas-lut-") as tmp:
        for i, spec in enumerate(specs):
            shape = (1, spec.in_channels, spec.resolution, spec.resolution)
            path = _export_one(build(spec).eval(), shape, runtime, precision, Path(tmp), f"net{i}")
            out.append(_time(path, run_job, runtime, threads, timing)["p50_ms"])
            for f in Path(tmp).iterdir():
                f.unlink()
            progress()
    return out


def measure_blocks(keys: Sequence[str], done: dict[str, dict], run_job, runtime: str, precision: str,
                   threads: int, timing: Timing = Timing(), partial: Path | None = None,
                   settings: dict | None = None, progress: Callable[[str], None] = lambda key: None
                   ) -> dict[str, dict]:
    """Measure each of ``keys`` not in ``done``, each block exported alone; returns ``done`` and the new rows.

    ``done`` is not changed. Every measurement is appended to ``partial`` (when
    given) as it finishes, so an interruption loses none.
    """
    from bench.files import append_jsonl

    rows = dict(done)
    with tempfile.TemporaryDirectory(prefix="edgenas-lut-") as tmp:
        for key in [k for k in keys if k not in rows]:
            progress(key)
            module, shape = key_module(key)
            artifact = _export_one(module, shape, runtime, precision, Path(tmp), "block")
            record = _time(artifact, run_job, runtime, threads, timing)
            row = {"key": key, "settings": settings, "p50_ms": record["p50_ms"], "mean_ms": record["mean_ms"],
                   "min_ms": record["min_ms"], "cv": record["cv"], "runtime_version": record["runtime_version"]}
            if partial is not None:
                append_jsonl(partial, row)
            rows[key] = row
            for f in Path(tmp).iterdir():
                f.unlink()
    return rows


def table_entries(keys: Sequence[str], done: dict[str, dict]) -> dict[str, dict]:
    """Entries of measured ``keys`` (and their empty models): ``net_ms`` is the p50 less the empty model's."""
    entries = {}
    for key in keys:
        empty = done[str(parse_key(key).empty)]["p50_ms"]
        row = done[key]
        entries[key] = {"p50_ms": row["p50_ms"], "net_ms": round(max(row["p50_ms"] - empty, 0.0), 6),
                        "empty_ms": empty, "cv": row["cv"]}
    for key in empty_keys(keys):
        entries[key] = {"p50_ms": done[key]["p50_ms"], "net_ms": 0.0, "empty_ms": done[key]["p50_ms"],
                        "cv": done[key]["cv"]}
    return entries
