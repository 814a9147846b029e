"""Latency sweeps: models x formats x precisions x resolutions x batch sizes x threads, on one device or a fleet.

The host exports each (model, resolution, batch) once into ``OUT/exports/``
(static input shape, so every format can take part), then measures each
artifact at each thread count on the device through its transport, appending
one record per measurement to ``OUT/records.jsonl``. A re-run skips the exports
whose manifest already lists the artifacts and every measurement already
recorded (:func:`bench.sweep.done_keys`), so an interrupted sweep loses at most
the measurement in flight. ``OUT/records.csv`` and ``OUT/plots/`` are rewritten
at the end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.records import Failure, is_failure
from bench.runtimes.base import RUNTIMES, export_format_of, runtime_of_format
from edgenas.errors import ConfigError
from edgenas.outputs import job_output

__all__ = ["SweepPlan", "run_sweep", "sweep_transport", "sweep_transports"]


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep covers.

    Attributes:
        models: run directories, arch.json files or baseline names.
        formats, precisions: artifact formats and precisions ("tensorrt": the ONNX export, measured in
            TensorRT on the device, which builds the engine there).
        resolutions: input sides; None = each model's own (32 for a baseline).
        batches: batch sizes (each a static-shape export).
        threads: inference thread counts.
        weights: model -> state-dict file (e.g. trained baselines).
        calib: INT8 calibration images.
    """

    models: tuple[str, ...]
    formats: tuple[str, ...] = ("onnx",)
    precisions: tuple[str, ...] = ("fp32",)
    resolutions: tuple[int | None, ...] = (None,)
    batches: tuple[int, ...] = (1,)
    threads: tuple[int, ...] = (1,)
    weights: dict[str, str] = field(default_factory=dict)
    calib: int = 300

    def __post_init__(self) -> None:
        from exporters.api import validate_request
        from exporters.errors import UnsupportedError

        if not self.models:
            raise ConfigError("a sweep needs at least one model")
        from exporters.spec import FORMATS

        built = sorted({e.format for _, e in RUNTIMES.items() if e.built_from})
        for fmt in self.formats:
            if fmt not in FORMATS and fmt not in built:
                raise ConfigError(f"unknown format {fmt!r} (known: {', '.join((*FORMATS, *built))}; "
                                  f"{', '.join(built)} is built on the device from an export)")
        try:
            validate_request(list(self.export_formats), list(self.precisions))
        except UnsupportedError as exc:
            raise ConfigError(str(exc)) from None
        for name, values in (("batch", self.batches), ("threads", self.threads)):
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise ConfigError(f"--{name} takes integers >= 1, got {values}")
        if any(r is not None and r < 8 for r in self.resolutions):
            raise ConfigError(f"--resolutions must be >= 8, got {self.resolutions}")
        unknown = set(self.weights) - set(self.models)
        if unknown:
            raise ConfigError(f"--weights names models not in the sweep: {', '.join(sorted(unknown))}")

    @property
    def export_formats(self) -> tuple[str, ...]:
        """What the host exports for :attr:`formats` (each once)."""
        return tuple(dict.fromkeys(export_format_of(f) for f in self.formats))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(text).name if Path(text).exists() else text).strip("_") or "model"


def _export_ok(out_dir: Path, formats: Sequence[str], precisions: Sequence[str]) -> bool:
    try:
        artifacts = json.loads((out_dir / "manifest.json").read_text())["artifacts"]
    except (OSError, ValueError, KeyError):
        return False
    done = {(a["format"], a["precision"]) for a in artifacts if a.get("status") == "ok"}
    return all((f, p) in done for f in formats for p in precisions)


def _profile(model: str, resolution: int | None, weights: str | None) -> tuple[int, int, int]:
    """(params, MACs, resolution) of a sweep model."""
    from edgenas.deploy.source import resolve_source
    from edgenas.profiler import count_macs, count_params

    source = resolve_source(model, weights=weights, resolution=resolution)
    return count_params(source.model), count_macs(source.model, source.resolution), source.resolution


@dataclass
class _Step:
    """One (model, resolution, batch) of a plan: its export, shared by every device."""

    name: str
    resolution: int
    batch: int
    params: int
    macs: int
    export_dir: Path
    targets: dict = field(default_factory=dict)
    reason: str = ""

    def planned(self, plan: SweepPlan, device, options) -> list[dict]:
        return [{"device": device.name, "model": self.name, "format": f, "precision": p,
                 "resolution": self.resolution, "batch": self.batch, "threads": t,
                 "runtime": options.runtime or runtime_of_format(f),
                 "inference_precision": options.inference_precision}
                for f in plan.formats for p in plan.precisions for t in plan.threads]


def _prepare(plan: SweepPlan, out: Path, devices: Sequence, options, done: set, progress, warn) -> list[_Step]:
    """Export (once, on this host) every step some device still has to measure; resolve its artifacts."""
    from bench.plan import resolve_targets
    from bench.sweep import key
    from edgenas.deploy.export import run_export
    from exporters.errors import ExportError

    steps = []
    for model in plan.models:
        for resolution in plan.resolutions:
            for batch in plan.batches:
                weights = plan.weights.get(model)
                params, macs, res = _profile(model, resolution, weights)
                name = _slug(model)
                step = _Step(name, res, batch, params, macs, out / "exports" / f"{name}-r{res}-b{batch}")
                steps.append(step)
                if all(key(p) in done for d in devices for p in step.planned(plan, d, options)):
                    continue
                if not _export_ok(step.export_dir, plan.export_formats, plan.precisions):
                    if progress:
                        progress(f"export {step.name}@{res} b{batch}", 0, 0)
                    try:
                        run_export(model, ",".join(plan.export_formats), ",".join(plan.precisions),
                                   out=str(step.export_dir),
                                   calib=plan.calib, resolution=res, weights=weights, batch=batch,
                                   parity_samples=max(64, batch))
                    except (ExportError, ConfigError) as exc:  # the artifacts that failed get failure records
                        warn(f"{step.name}@{res} b{batch}: {exc}")
                try:
                    step.targets = {(t.format, t.precision): t for t in resolve_targets([str(step.export_dir)])}
                    step.reason = "export failed (see the manifest)"
                except Exception as exc:  # noqa: BLE001 - no manifest at all: every planned measurement fails
                    step.reason = str(exc)
    return steps


def _measure(step: _Step, p: dict, device, run_job, options, data, retries: int) -> dict:
    """One planned measurement: a record, or a failure record with its reason (after ``retries`` more tries).

    A hung or crashed measurement is recorded and the sweep goes on; a lost device
    (:class:`~devices.errors.HostUnreachableError` and the like) is raised.
    """
    from devices.errors import RemoteError, RemoteTimeoutError
    from edgenas.deploy.bench import finish_record, job_for

    target = step.targets.get((export_format_of(p["format"]), p["precision"]))
    if target is None:
        return Failure(step.reason, "ExportError", plan=p).to_record()
    target = type(target)(**{**target.__dict__, "model": step.name})
    npz = data.path_for(step.resolution) if data is not None else None
    job_options = type(options)(**{**options.__dict__, "threads": p["threads"], "batch": step.batch,
                                   "runtime": p["runtime"]})
    job = job_for(target, job_options, device, npz, meta={"params": step.params, "macs": step.macs})
    for attempt in range(retries + 1):
        try:
            record = finish_record(run_job(job, options.timeout), device, target)
            break
        except (RemoteTimeoutError, RemoteError) as exc:
            record = Failure.of(exc, attempts=attempt + 1, plan=p).to_record()
    record["plan"] = p
    return record


def sweep_transport(plan: SweepPlan, out: str | Path, run_job: Callable[[dict, float], dict], device: Any,
                    bench_options=None, data=None, retry_failed: bool = False,
                    progress: Callable[[str, int, int], None] | None = None,
                    warn: Callable[[str], None] = lambda m: None, retries: int = 0) -> list[dict]:
    """Run (or resume) the sweep ``plan`` into ``out`` on one device; returns every record of the sweep file.

    Args:
        run_job: ``(job, timeout) -> record`` of the device's transport.
        device: the device profile (name, default threads).
        bench_options: :class:`edgenas.deploy.bench.BenchOptions` (warm-up, runs, timeout, runtime settings).
        data: a :class:`edgenas.deploy.bench.DataCache` for accuracy, or None.
        progress: ``(what, done, total)`` after each step.
        retries: more tries of a measurement that hung or crashed before it is recorded as failed.
    """
    records, _ = sweep_transports(plan, out, [(device, run_job)], bench_options, data, retry_failed, progress, warn,
                                  retries)
    return records


def sweep_transports(plan: SweepPlan, out: str | Path, devices: Sequence[tuple[Any, Callable]],
                     bench_options=None, data=None, retry_failed: bool = False,
                     progress: Callable[[str, int, int], None] | None = None,
                     warn: Callable[[str], None] = lambda m: None, retries: int = 0
                     ) -> tuple[list[dict], list[dict]]:
    """Run (or resume) ``plan`` on several devices at once: one worker thread per device.

    Each device runs one measurement at a time (measurements on one board do not
    disturb each other), all devices at the same time. Every record goes to the
    one ``OUT/records.jsonl`` as it finishes; a re-run measures only what no
    record holds. A device that drops out (unreachable, refused) gets a failure
    record for each measurement it had left, with the reason, and the others
    finish (``--retry-failed`` measures those again later).

    Args:
        devices: ``(profile, run_job)`` per device.

    Returns:
        (every record of the sweep file, one summary per device: measured, failed, dropped out, wall seconds).
    """
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from bench.files import append_jsonl, read_jsonl
    from bench.sweep import done_keys, key, plot_records, write_csv
    from devices.errors import TransportError
    from edgenas.deploy.bench import BenchOptions

    options = bench_options or BenchOptions()
    out = Path(out)
    with job_output(out, "sweep", durable=lambda: (out / "records.jsonl").exists()):
        records_path = out / "records.jsonl"
        done = done_keys(records_path, retry_failed=retry_failed)
        profiles = [d for d, _ in devices]
        steps = _prepare(plan, out, profiles, options, done, progress, warn)
        work = {d.name: [(s, p) for s in steps for p in s.planned(plan, d, options) if key(p) not in done]
                for d in profiles}
        total = sum(len(s.planned(plan, d, options)) for s in steps for d in profiles)
        finished = [total - sum(len(w) for w in work.values())]
        lock = threading.Lock()

        def write(record: dict, what: str) -> None:
            with lock:
                append_jsonl(records_path, record)
                finished[0] += 1
                if progress:
                    progress(what, finished[0], total)

        def worker(device, run_job) -> dict:
            t0 = time.perf_counter()
            summary = {"device": device.name, "measured": 0, "failed": 0, "dropped_out": None}
            todo = work[device.name]
            for i, (step, p) in enumerate(todo):
                try:
                    record = _measure(step, p, device, run_job, options, data, retries)
                except TransportError as exc:  # the device is gone: the rest of its work fails with the reason
                    reason = f"device {device.name} dropped out: {exc}"
                    summary["dropped_out"] = str(exc)
                    for _, rest in todo[i:]:
                        write(Failure(reason, type(exc).__name__, plan=rest).to_record(), f"{device.name}: dropped out")
                    summary["failed"] += len(todo) - i
                    break
                summary["failed" if is_failure(record) else "measured"] += 1
                write(record, f"{device.name}: {step.name}@{step.resolution} {p['format']}/{p['precision']} "
                              f"t{p['threads']}")
            summary["wall_s"] = round(time.perf_counter() - t0, 2)
            return summary

        if len(devices) == 1:
            summaries = [worker(*devices[0])]
        else:
            with ThreadPoolExecutor(max_workers=len(devices), thread_name_prefix="edgenas-device") as pool:
                summaries = list(pool.map(lambda d: worker(*d), devices))
        records = read_jsonl(records_path)
        write_csv(records, out / "records.csv")
        names = ", ".join(d.name for d in profiles)
        plot_records(records, out / "plots", title=f"sweep on {names}")
        return records, summaries


def run_sweep(plan: SweepPlan, out: str | Path, reach, device_names: Sequence[str] | None = None,
              bench_options=None, data: str | None = None, data_root: str | None = None, samples: int = 1000,
              retry_failed: bool = False, retries: int = 0, progress: bool = True,
              warn: Callable[[str], None] = lambda m: None) -> tuple[list[dict], list[dict] | None]:
    """The Python form of ``edgenas sweep``: ``plan`` on one device (``reach``) or a fleet (``device_names``).

    A fleet connects to every device it names (each profile names its host; the
    reach's key, known_hosts and python apply to all); a device that cannot be
    reached is reported through ``warn`` and left out, and ``OUT/fleet.json`` says
    what each device did.

    Returns:
        (every record of the sweep file, one summary per device for a fleet, else None).

    Raises:
        ConfigError: no device of the fleet could be reached; DevicesError: the one device cannot be reached.
    """
    from bench.files import atomic_write_text
    from devices.errors import TransportError
    from devices.profiles import load_profile
    from devices.transport import open_transport
    from edgenas.deploy.bench import DataCache
    from edgenas.progress import ProgressBar

    out = Path(out)
    with job_output(out, "sweep", durable=lambda: (out / "records.jsonl").exists()):
        cache = DataCache(data, data_root, samples)
        if not device_names:
            profile, transport = reach.open()
            connected, unreachable = [(profile, transport)], {}
        else:
            connected, unreachable = [], {}
            for profile in [load_profile(d) for d in device_names]:
                try:
                    connected.append((profile, open_transport(profile, key=reach.key,
                                                              known_hosts=reach.known_hosts, python=reach.python)))
                except TransportError as exc:
                    unreachable[profile.name] = str(exc)
                    warn(f"{profile.name} left out: {exc}")
            if not connected:
                raise ConfigError("no device of the fleet could be reached: "
                                  + "; ".join(f"{k}: {v}" for k, v in unreachable.items()))
        try:
            with ProgressBar("sweep", enabled=progress, only_on_terminal=True, transient=True) as bar:
                records, summaries = sweep_transports(
                    plan, out, [(p, t.run_job) for p, t in connected], bench_options, cache if data else None,
                    retry_failed=retry_failed, progress=bar.report, warn=warn, retries=retries)
        finally:
            for _, transport in connected:
                transport.close()
            cache.close()
        if not device_names:
            return records, None
        summaries += [{"device": name, "measured": 0, "failed": 0, "dropped_out": reason, "wall_s": 0.0}
                      for name, reason in unreachable.items()]
        atomic_write_text(Path(out) / "fleet.json", json.dumps(summaries, indent=2) + "\n")
        return records, summaries
