"""Building latency tables: every block a space can hold, measured on the device, then calibrated.

:func:`build_table` exports every block of the cell space at every shape it can
take (plus an empty model per input shape, the cost of calling the runtime at
all), measures each on the device through its transport, then measures a
handful of whole random networks and fits the calibration of
:class:`bench.latency_table.LatencyTable`. Finished measurements are kept in
``<table>.partial.jsonl``, so an interrupted build resumes.
:func:`validate_table` compares the predictions with measurements of
held-out random networks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.latency.files import table_file_name
from edgenas.latency.keys import Layout, empty_keys
from edgenas.latency.measure import Timing, measure_blocks, measure_specs, table_entries

__all__ = ["build_evolved_table", "build_table", "fit_figures", "validate_table", "write_plan", "write_table"]

Progress = Callable[[str, int, int], None]


def build_table(layouts: Sequence[Layout], ops: Sequence[str], run_job, device, fingerprint: dict,
                runtime: str = "ort", precision: str = "fp32", threads: int = 1, out: str | Path = "luts",
                calibration_networks: int = 12, seed: int = 0, timing: Timing = Timing(),
                progress: Progress = lambda what, done, total: None) -> Path:
    """Measure every block of the cell space's ``layouts`` and a few whole networks on ``device``; write the table.

    Returns:
        The table's path, ``out/<device>-<runtime>-<precision>.json`` (written atomically).
    """
    from edgenas.latency.spaces import LATENCY_SPACES
    from edgenas.space.spec import SPACE_NAME

    cells = LATENCY_SPACES.get(SPACE_NAME)
    return write_plan(cells, cells.plan_layouts(layouts, ops, calibration_networks, seed), run_job, device,
                      fingerprint, runtime, precision, threads, out, timing, progress)


def build_evolved_table(cfg, num_classes: int, run_job, device, fingerprint: dict, runtime: str = "ort",
                        precision: str = "fp32", threads: int = 1, out: str | Path = "luts",
                        calibration_networks: int = 12, depth: int = 2, timing: Timing = Timing(),
                        progress: Progress = lambda what, done, total: None) -> Path:
    """Measure the blocks within ``depth`` mutations of the seed network of ``cfg``, calibrate, write the table.

    Returns:
        The table's path, ``out/<device>-evolved-cnn-<runtime>-<precision>.json``.
    """
    from edgenas.latency.evolved import LIMITS
    from edgenas.latency.spaces import LATENCY_SPACES, SpaceOptions
    from edgenas.space.evolved import EVOLVED_SPACE

    options = SpaceOptions(resolutions=(cfg.resolution,), num_classes=num_classes, seed=cfg.seed,
                           calibration_networks=calibration_networks, depth=depth,
                           evolve=tuple((k, getattr(cfg, k)) for k in LIMITS if k != "resolution"))
    evolved = LATENCY_SPACES.get(EVOLVED_SPACE)
    return write_plan(evolved, evolved.plan(options), run_job, device, fingerprint, runtime, precision, threads,
                      out, timing, progress)


def write_plan(space, plan, run_job, device, fingerprint: dict, runtime: str, precision: str, threads: int,
               out: str | Path, timing: Timing = Timing(), progress: Progress = lambda what, done, total: None
               ) -> Path:
    """:func:`write_table` of a :class:`~edgenas.latency.spaces.TablePlan` of the :class:`LatencySpace` ``space``."""
    return write_table(plan.keys, plan.calibration, space.name, space.version, plan.describe, run_job, device,
                       fingerprint, runtime, precision, threads, out, timing, progress)


def write_table(keys: Sequence[str], specs: Sequence, space: str, space_version: int, describe: dict, run_job,
                device, fingerprint: dict, runtime: str, precision: str, threads: int, out: str | Path,
                timing: Timing = Timing(), progress: Progress = lambda what, done, total: None) -> Path:
    """Measure ``keys`` (resumable) and the calibration networks ``specs``; write the table of ``space``.

    Raises:
        ConfigError, UnknownRuntimeError: an unknown runtime; a measurement that failed on the device.
    """
    from bench.runtimes.base import format_of_runtime
    from edgenas.outputs import job_output

    format_of_runtime(runtime)  # an unknown runtime fails before anything is measured
    out = Path(out)
    path = out / table_file_name(device.name, runtime, precision, space)
    partial = path.with_name(path.name + ".partial.jsonl")
    with job_output(out, "latency table", durable=partial.exists, lock_name=f".{path.name}.lock"):
        return _measure_table(keys, specs, space, space_version, describe, run_job, device, fingerprint, runtime,
                              precision, threads, path, partial, timing, progress)


def _measure_table(keys, specs, space, space_version, describe, run_job, device, fingerprint, runtime, precision,
                   threads, path: Path, partial: Path, timing: Timing, progress: Progress) -> Path:
    from bench.files import atomic_write_text, read_jsonl
    from bench.latency_table import SCHEMA_VERSION, LatencyTable, fit_calibration
    from edgenas.latency.spaces import arch_keys
    from exporters.freeze import FREEZE_REVISION

    # a partial build of an older exporter is not resumed: its blocks were exported another way
    settings = {"runtime": runtime, "precision": precision, "threads": threads, "device": device.name,
                "freeze_revision": FREEZE_REVISION}
    done = {r["key"]: r for r in read_jsonl(partial) if r.get("settings") == settings}
    all_keys = [*empty_keys(keys), *keys]
    total = len(all_keys) + len(specs)
    count = [sum(k in done for k in all_keys)]

    def step(key: str) -> None:
        progress(key, count[0], total)
        count[0] += 1

    done = measure_blocks(all_keys, done, run_job, runtime, precision, threads, timing, partial, settings, step)
    table = LatencyTable({
        "schema": SCHEMA_VERSION, "device": device.name, "runtime": runtime,
        "runtime_version": next((r["runtime_version"] for r in done.values()), ""),
        "precision": precision, "threads": threads, "space": space, "space_version": space_version,
        **describe, "estimated": False, "freeze_revision": FREEZE_REVISION,
        "fingerprint": fingerprint, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "entries": table_entries(keys, done), "calibration": None})
    progress("calibration networks", count[0], total)
    measured = measure_specs(specs, run_job, runtime, precision, threads, timing,
                             progress=lambda: progress("calibration networks", count[0], total))
    table.data["calibration"] = fit_calibration([table.raw_sum(arch_keys(s)) for s in specs], measured)
    atomic_write_text(path, table.to_json())
    partial.unlink(missing_ok=True)
    progress("done", total, total)
    return path


def validate_table(table, specs: Sequence, run_job, timing: Timing = Timing(),
                   progress: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Predicted vs measured p50 of ``specs`` on the table's device.

    Returns:
        ``{"predicted_ms", "measured_ms", "mape_pct", "within_10pct", "spearman", "n"}``.
    """
    from edgenas.latency.spaces import arch_keys

    if not specs:
        raise ConfigError("no held-out networks to validate the table on")
    predicted = [table.predict(arch_keys(s)) for s in specs]
    measured = measure_specs(specs, run_job, table.runtime, table.precision, int(table.threads), timing, progress)
    return {"n": len(specs), "predicted_ms": predicted, "measured_ms": measured, **fit_figures(predicted, measured)}


def fit_figures(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, Any]:
    """``{"mape_pct", "within_10pct", "spearman"}`` of predicted against measured latencies."""
    from bench.latency_table import spearman

    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"mape_pct": 100 * sum(errors) / len(errors),
            "within_10pct": sum(e <= 0.10 for e in errors) / len(errors),
            "spearman": spearman(list(predicted), list(measured)) if len(errors) > 1 else None}
