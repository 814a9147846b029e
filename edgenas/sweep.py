"""Latency sweeps: models x formats x precisions x resolutions x batch sizes x threads on one device.

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

from edgenas.errors import ConfigError

__all__ = ["SweepPlan", "run_sweep"]

_RUNTIME_OF_FORMAT = {"onnx": "ort", "tflite": "litert", "openvino": "openvino"}


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep covers.

    Attributes:
        models: run directories, arch.json files or baseline names.
        formats, precisions: export formats and precisions.
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
        try:
            validate_request(list(self.formats), list(self.precisions))
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
    from edgenas.export_source import resolve_source
    from edgenas.profiler import count_macs, count_params

    source = resolve_source(model, weights=weights, resolution=resolution)
    return count_params(source.model), count_macs(source.model, source.resolution), source.resolution


def run_sweep(plan: SweepPlan, out: str | Path, run_job: Callable[[dict, float], dict], device: Any,
              bench_options=None, data=None, retry_failed: bool = False,
              progress: Callable[[str, int, int], None] | None = None,
              warn: Callable[[str], None] = lambda m: None) -> list[dict]:
    """Run (or resume) the sweep ``plan`` into ``out``; returns every record of the sweep file.

    Args:
        run_job: ``(job, timeout) -> record`` of the device's transport.
        device: the device profile (name, default threads).
        bench_options: :class:`edgenas.cli.bench.BenchOptions` (warm-up, runs, timeout, runtime settings).
        data: a :class:`edgenas.cli.bench.DataCache` for accuracy, or None.
        progress: ``(what, done, total)`` after each step.
    """
    from bench.files import append_jsonl, read_jsonl
    from bench.plan import resolve_targets
    from bench.sweep import done_keys, key, plot_records, write_csv
    from devices.errors import RemoteError, RemoteTimeoutError
    from edgenas.cli.bench import BenchOptions, finish_record, job_for
    from edgenas.cli.export import run_export
    from exporters.errors import ExportError

    options = bench_options or BenchOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "records.jsonl"
    done = done_keys(records_path, retry_failed=retry_failed)
    steps = [(m, r, b) for m in plan.models for r in plan.resolutions for b in plan.batches]
    total = len(steps) * len(plan.formats) * len(plan.precisions) * len(plan.threads)
    finished = 0
    for model, resolution, batch in steps:
        weights = plan.weights.get(model)
        params, macs, res = _profile(model, resolution, weights)
        name = _slug(model)
        export_dir = out / "exports" / f"{name}-r{res}-b{batch}"
        planned = [{"device": device.name, "model": name, "format": f, "precision": p, "resolution": res,
                    "batch": batch, "threads": t, "runtime": options.runtime or _RUNTIME_OF_FORMAT[f],
                    "inference_precision": options.inference_precision}
                   for f in plan.formats for p in plan.precisions for t in plan.threads]
        todo = [p for p in planned if key(p) not in done]
        finished += len(planned) - len(todo)
        if not todo:
            continue
        if not _export_ok(export_dir, plan.formats, plan.precisions):
            if progress:
                progress(f"export {name}@{res} b{batch}", finished, total)
            try:
                run_export(model, ",".join(plan.formats), ",".join(plan.precisions), out=str(export_dir),
                           calib=plan.calib, resolution=res, weights=weights, batch=batch,
                           parity_samples=max(64, batch))
            except (ExportError, ConfigError) as exc:  # the artifacts that failed get failure records below
                warn(f"{name}@{res} b{batch}: {exc}")
        try:
            targets = {(t.format, t.precision): t for t in resolve_targets([str(export_dir)])}
        except Exception as exc:  # noqa: BLE001 - no manifest at all: every planned measurement fails
            targets, reason = {}, str(exc)
        else:
            reason = "export failed (see the manifest)"
        for p in todo:
            target = targets.get((p["format"], p["precision"]))
            if target is None:
                record = {**p, "error": reason, "error_type": "ExportError", "plan": p}
            else:
                target = type(target)(**{**target.__dict__, "model": name})
                npz = data.path_for(res) if data is not None else None
                job_options = type(options)(**{**options.__dict__, "threads": p["threads"], "batch": batch})
                job = job_for(target, job_options, device, npz, meta={"params": params, "macs": macs})
                try:
                    record = finish_record(run_job(job, options.timeout), device, target)
                except (RemoteTimeoutError, RemoteError) as exc:
                    # this measurement hung or crashed on the device: recorded, and the sweep goes on
                    # (an unreachable host, a bad key or host key stops the sweep instead)
                    record = {**p, "error": str(exc), "error_type": type(exc).__name__}
                record["plan"] = p
            append_jsonl(records_path, record)
            finished += 1
            if progress:
                progress(f"{name}@{res} {p['format']}/{p['precision']} t{p['threads']}", finished, total)
    records = read_jsonl(records_path)
    write_csv(records, out / "records.csv")
    plot_records(records, out / "plots", title=f"sweep on {device.name}")
    return records
