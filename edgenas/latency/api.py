"""The Python forms of ``edgenas lut build|predict|validate`` and ``edgenas space sample``.

Each function takes what its command parses and returns what it prints; the
device is named by its profile and reached through :func:`devices.transport.open_device`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devices.transport import Reach
from edgenas.errors import ConfigError
from edgenas.latency.files import find_table, table_file_name
from edgenas.latency.measure import Timing
from edgenas.latency.spaces import LATENCY_SPACES, SpaceOptions
from edgenas.progress import ProgressBar

__all__ = ["build_lut", "predict_latency", "sample_architectures", "validate_lut"]


def build_lut(reach: Reach, space: str, options: SpaceOptions, runtime: str | None = None, precision: str = "fp32",
              threads: int | None = None, out: str | Path = "luts", timing: Timing = Timing(),
              progress: bool = True) -> Path:
    """Measure every block of ``space`` framed by ``options`` on the device; returns the table written.

    Interrupted builds resume (their measurements are kept in ``<table>.partial.jsonl``).

    Raises:
        UnknownNameError: an unknown space; DevicesError: the device cannot be reached;
        ConfigError: bad options, or a measurement failed on the device.
    """
    from edgenas.latency.build import write_plan

    latency_space = LATENCY_SPACES.get(space)
    plan = latency_space.plan(options)
    profile, transport = reach.open()
    with transport, ProgressBar("lut build", enabled=progress, only_on_terminal=True, transient=True) as bar:
        probe = transport.probe()
        return write_plan(latency_space, plan, transport.run_job, profile, probe.get("fingerprint", {}),
                          runtime or profile.runtime, precision, threads or profile.threads, out, timing, bar.report)


def predict_latency(table_path: str | Path, archs: list[str]) -> list[dict[str, Any]]:
    """Predicted latency of each ``arch.json`` (no torch needed): ``{arch, predicted_ms, table, estimated}``.

    Raises:
        LutError: an unreadable table, or one of another space; ArchSpecError: a malformed arch.json.
    """
    from bench.latency_table import LatencyTable
    from edgenas.space.registry import load_spec

    table = LatencyTable.load(table_path)
    rows = []
    for arch in archs:
        spec = load_spec(arch)
        table.check(space=spec.space, space_version=spec.space_version)
        rows.append({"arch": arch, "predicted_ms": LATENCY_SPACES.get(spec.space).predict(table, spec),
                     "table": table.label, "estimated": table.estimated})
    return rows


def validate_lut(reach: Reach, space: str, table_path: str | Path | None = None, runtime: str | None = None,
                 precision: str = "fp32", samples: int = 100, seed: int = 1, timing: Timing = Timing(),
                 plot: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Predicted against measured latency of ``samples`` random held-out networks of the table's space.

    The table is ``table_path``, else the device's table of ``space`` on the table path.
    Blocks a growing table lacks (evolved space) are measured into it first, with ``timing``.

    Returns:
        :func:`edgenas.latency.build.validate_table`'s figures, with ``table``, ``estimated``,
        ``device``, ``runtime`` and ``plot`` (the scatter plot written, or None without matplotlib).
    """
    from bench.latency_table import LatencyTable, MissingEntryError
    from edgenas.latency.build import fit_figures, validate_table
    from edgenas.latency.measure import measure_blocks

    latency_space = LATENCY_SPACES.get(space)
    profile, transport = reach.open()
    with transport:
        runtime = runtime or profile.runtime
        path = Path(table_path) if table_path else find_table(profile.name, runtime, precision, space=space)
        if path is None:
            raise ConfigError(f"no latency table {table_file_name(profile.name, runtime, precision, space)} found; "
                              f"edgenas lut build --device {profile.name} --space {space} measures one")
        table = LatencyTable.load(path)
        table.check(device=profile.name, runtime=runtime, precision=precision, space=latency_space.name)
        specs = latency_space.held_out(table, samples, seed)
        try:  # before cover: what a search scales candidates with (a space whose table can stand in for them)
            fitted = [latency_space.predict(table, s) for s in specs]
        except MissingEntryError:
            fitted = None
        latency_space.cover(table, specs, lambda keys: measure_blocks(
            keys, {}, transport.run_job, table.runtime, table.precision, int(table.threads), timing), path, profile)
        with ProgressBar("lut validate", samples, description="held-out networks", enabled=progress,
                         only_on_terminal=True, transient=True) as bar:
            result = validate_table(table, specs, transport.run_job, timing, bar.advance)
    if fitted is not None and any(abs(f - p) > 1e-9 for f, p in zip(fitted, result["predicted_ms"])):
        result["fitted"] = fit_figures(fitted, result["measured_ms"])
    result.update(table=str(path), label=table.label, estimated=table.estimated, device=profile.name,
                  runtime=table.runtime)
    target = Path(plot) if plot else path.with_suffix(".validate.png")
    written = _scatter(result, target, table.label)
    result["plot"] = str(written) if written else None
    return result


def sample_architectures(space: str, options: SpaceOptions, n: int, seed: int, out: str | Path) -> list[Path]:
    """Write ``n`` random ``arch.json`` files of ``space`` into ``out`` (the random-search baseline)."""
    from bench.files import atomic_write_text

    from edgenas.outputs import job_output

    specs = LATENCY_SPACES.get(space).sample(options, n, seed)
    out = Path(out)
    width = len(str(n - 1))
    with job_output(out, "space sample"):  # all or nothing: a failure removes the files written
        return [atomic_write_text(out / f"arch-{i:0{width}d}.json", json.dumps(spec.to_dict(), indent=1))
                for i, spec in enumerate(specs)]


def _scatter(result: dict, path: Path, label: str) -> Path | None:
    """Measured against predicted latency, the identity and a +/-10% band."""
    from edgenas.report.figures import pyplot, save_figure

    plt = pyplot()
    if plt is None:
        return None
    m, p = result["measured_ms"], result["predicted_ms"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(m, p, s=12, alpha=0.7)
    lo, hi = min(m + p), max(m + p)
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.2, label="+/-10%")
    spearman = "n/a" if result["spearman"] is None else f"{result['spearman']:.3f}"
    ax.set(xlabel="measured p50 (ms)", ylabel="predicted (ms)",
           title=f"{label}\nMAPE {result['mape_pct']:.1f}%, {100 * result['within_10pct']:.0f}% within 10%, "
                 f"Spearman {spearman}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)
