"""``edgenas bench`` as a Python function: exported models measured in their real runtimes, here or on a board.

Each artifact is measured by :mod:`bench.worker` in a fresh process on the
device (so that peak memory is the model's alone); the transport (local
subprocess or SSH) comes from the device profile and the reach options.
Labelled held-out images for accuracy are drawn here and shipped as ``.npz``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.records import Failure, is_failure
from devices.transport import Reach
from edgenas.progress import ProgressBar

__all__ = ["BenchOptions", "DataCache", "finish_record", "job_for", "resolution_of", "run_bench"]


@dataclass(frozen=True)
class BenchOptions:
    """Measurement options shared by ``bench``, ``sweep`` and ``compare``."""

    threads: int | None = None  # None: the device profile's
    batch: int | None = None
    warmup: int = 50
    runs: int = 300
    runtime: str | None = None
    inference_precision: str | None = None
    timeout: float = 600.0
    extra: tuple[tuple[str, str], ...] = ()
    energy_seconds: float = 2.0


def resolution_of(target) -> int:
    """The target's input side: from its manifest, else read from the artifact on this host."""
    if target.resolution:
        return target.resolution
    from bench.runtimes.base import open_runner

    with open_runner(target.path) as runner:
        return int(runner.input_shape[-1] if runner.input_shape[1] in (1, 3) else runner.input_shape[2])


class DataCache:
    """Labelled ``.npz`` files per resolution, drawn once per command in a temporary directory."""

    def __init__(self, name: str | None, root: str | None, samples: int, seed: int = 0, level: int = 1) -> None:
        self.name, self.root, self.samples, self.seed, self.level = name, root, samples, seed, level
        self._dir: tempfile.TemporaryDirectory | None = None
        self._files: dict[int, Path] = {}

    def path_for(self, resolution: int) -> Path | None:
        if not self.name:
            return None
        if resolution not in self._files:
            from edgenas.deploy.data import labelled_npz

            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="edgenas-bench-")
            self._files[resolution] = labelled_npz(self.name, self.root, resolution, self.samples, self.seed,
                                                   Path(self._dir.name) / f"{self.name}-{resolution}.npz",
                                                   level=self.level)
        return self._files[resolution]

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()


def job_for(target, options: BenchOptions, profile, data: Path | None, meta: dict[str, Any] | None = None) -> dict:
    """The worker's job for ``target``: the options, over the profile's defaults for its runtime."""
    from bench.runtimes.base import runtime_for
    from bench.worker import make_job

    runtime = options.runtime or runtime_for(target.path)
    given = {key for key, _ in options.extra}
    defaults = [[k, v] for k, v in (getattr(profile, "runtime_options", {}) or {}).get(runtime, {}).items()
                if k not in given]
    return make_job(
        target.path, runtime=options.runtime, threads=options.threads or profile.threads, batch=options.batch,
        warmup=options.warmup, runs=options.runs, inference_precision=options.inference_precision,
        energy_seconds=options.energy_seconds,
        extra=defaults + [list(pair) for pair in options.extra], data=str(data) if data else None,
        meta={"device": profile.name, "model": target.model, **target.info, **(meta or {})})


def finish_record(record: dict, profile, target) -> dict:
    """The worker's record with the device name on top (or, for a failure, a record of the failure)."""
    if is_failure(record):
        return Failure(record["error"], record.get("error_type") or "BenchError",
                       {"device": profile.name, "artifact": target.path.name, "model": target.model,
                        "format": target.format, "precision": target.precision}).to_record()
    return {"device": profile.name, "model": target.model, **record}


def run_bench(items: list[str], options: BenchOptions = BenchOptions(), reach: Reach = Reach(),
              data: str | None = None, data_root: str | None = None, samples: int = 1000, out: str | None = None,
              progress: bool = True) -> list[dict]:
    """Measure every artifact of ``items`` on ``device``: the Python form of ``edgenas bench``.

    Returns:
        One record per artifact (failures as records with an ``error``), also appended to ``out`` (JSONL).

    Raises:
        ArtifactError: a path that does not exist or is not a model/manifest.
        DevicesError: unknown device, unreachable host, bad key or host key (transport errors).
    """
    from bench.files import append_jsonl
    from bench.plan import resolve_targets

    targets = resolve_targets(items)
    if out:  # a record file that cannot be written fails now, not after the measurements
        from edgenas.outputs import OutputError, check_writable

        if Path(out).is_dir():
            raise OutputError(f"{out}: is a directory (--out takes a JSONL file)")
        check_writable(Path(out).resolve().parent)
    cache = DataCache(data, data_root, samples)
    profile, transport = reach.open()
    records = []
    try:
        with ProgressBar(f"bench on {profile.name}", len(targets), enabled=progress, only_on_terminal=True,
                         transient=True) as bar:
            for target in targets:
                npz = cache.path_for(resolution_of(target)) if data else None
                record = finish_record(transport.run_job(job_for(target, options, profile, npz),
                                                         timeout=options.timeout), profile, target)
                if out:
                    append_jsonl(out, record)
                records.append(record)
                bar.advance()
    finally:
        transport.close()
        cache.close()
    return records
