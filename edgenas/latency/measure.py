"""Measuring for latency tables: each block, or each whole network, exported alone and timed on the device.

Every artifact is exported with the format's own exporter (no parity check:
these are timing models with random weights, BN folded) and measured by the
bench worker through the device's transport, in a fresh process each.

Exporting dominates a build for LiteRT (a PT2E conversion takes seconds, a
block's timing a fraction of one): ``Timing.jobs`` exports that many artifacts
at a time in as many processes, then times them one after the other with no
conversion running, so a local device's timings stay as undisturbed as with one.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgenas.errors import ConfigError
from edgenas.latency.blocks import key_module
from edgenas.latency.keys import empty_keys, parse_key

__all__ = ["Timing", "measure_blocks", "measure_specs", "table_entries"]


@dataclass(frozen=True)
class Timing:
    """How table measurements are made: untimed warm-up runs, timed runs, seconds allowed on the device, and
    processes exporting the artifacts (``jobs`` at a time, timed only once all of them are exported)."""

    warmup: int = 30
    runs: int = 200
    timeout: float = 600.0
    jobs: int = 1

    def __post_init__(self) -> None:
        if self.warmup < 0 or self.runs < 1 or not self.timeout > 0:
            raise ConfigError(f"timing needs warm-up >= 0, runs >= 1 and a positive timeout, got {self}")
        if not isinstance(self.jobs, int) or isinstance(self.jobs, bool) or not 1 <= self.jobs <= 256:
            raise ConfigError(f"--jobs must be an integer in 1..256, got {self.jobs!r}")


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


def _export_item(item, runtime: str, precision: str, out_dir: str) -> Path:
    """Export a table key's block or a whole network spec into ``out_dir`` (a pool worker's task, picklable)."""
    from edgenas.models import build

    if isinstance(item, str):
        module, shape = key_module(item)
    else:
        module, shape = build(item).eval(), (1, item.in_channels, item.resolution, item.resolution)
    return _export_one(module, shape, runtime, precision, Path(out_dir), "model")


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # jobs processes on as many cores, not each on all of them


def _exported(items: Sequence, runtime: str, precision: str, jobs: int) -> Iterator[tuple[object, Path]]:
    """(item, artifact) of each of ``items`` in order, exported ``jobs`` at a time; each artifact is deleted once
    the caller asks for the next one, and nothing is exported while the caller holds one (it times it)."""
    with tempfile.TemporaryDirectory(prefix="edgenas-lut-") as tmp:
        if jobs == 1:
            for i, item in enumerate(items):
                out = Path(tmp) / str(i)
                out.mkdir()
                yield item, _export_item(item, runtime, precision, str(out))
                shutil.rmtree(out)
            return
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_one_thread) as pool:
            for start in range(0, len(items), jobs):
                chunk = list(enumerate(items[start:start + jobs], start))
                for i, _ in chunk:
                    (Path(tmp) / str(i)).mkdir()
                futures = [pool.submit(_export_item, item, runtime, precision, str(Path(tmp) / str(i)))
                           for i, item in chunk]
                paths = [f.result() for f in futures]
                for (i, item), path in zip(chunk, paths):
                    yield item, path
                    shutil.rmtree(Path(tmp) / str(i))


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
    out = []
    for _, path in _exported(list(specs), runtime, precision, timing.jobs):
        out.append(_time(path, run_job, runtime, threads, timing)["p50_ms"])
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
    for key, artifact in _exported([k for k in keys if k not in rows], runtime, precision, timing.jobs):
        progress(key)
        record = _time(artifact, run_job, runtime, threads, timing)
        row = {"key": key, "settings": settings, "p50_ms": record["p50_ms"], "mean_ms": record["mean_ms"],
               "min_ms": record["min_ms"], "cv": record["cv"], "runtime_version": record["runtime_version"]}
        if partial is not None:
            append_jsonl(partial, row)
        rows[key] = row
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
