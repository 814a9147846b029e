"""The searched network against the baselines on one device: a table and a Pareto plot in the run's report."""

from __future__ import annotations

from pathlib import Path


__all__ = ["COMPARE_BASELINES", "comparison_markdown", "run_compare", "write_comparison"]

#: the baselines every comparison measures next to the searched network
COMPARE_BASELINES = ("mobilenet_v2_035", "mobilenet_v3_small", "efficientnet_b0")

BEGIN, END = "<!-- edgenas compare: begin -->", "<!-- edgenas compare: end -->"


def comparison_markdown(records: list[dict], device: str, plot: str | None) -> str:
    """The report section: one row per measured artifact, sorted by model then format/precision."""
    ok = [r for r in records if "error" not in r]
    lines = [BEGIN, f"## Device comparison ({device})", "",
             "Every model exported the same way and measured on the same device with the same settings "
             "(`edgenas compare`). Latency in ms over the timed runs; accuracy on held-out labelled images "
             "when `--data` was given, with the weights measured: a search run's classifier and the "
             "baselines are untrained unless fine-tuned weights are given (`--weights MODEL=PATH`).", "",
             "| model | params | MACs | format | precision | threads | p50 ms | p90 ms | peak RSS MB | accuracy % |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(ok, key=lambda r: (str(r.get("model")), str(r.get("format")), str(r.get("precision")))):
        meta = r.get("meta") or {}
        acc = "-" if r.get("accuracy") is None else f"{r['accuracy']:.2f}"
        lines.append(f"| {r.get('model')} | {meta.get('params', 0):,} | {meta.get('macs', 0) / 1e6:.2f}M | "
                     f"{r['format']} | {r['precision']} | {r['threads']} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | "
                     f"{r['peak_rss_mb']:.0f} | {acc} |")
    failed = [r for r in records if "error" in r]
    if failed:
        lines += ["", "Failed: " + "; ".join(f"{r.get('model')} {r.get('format')}/{r.get('precision')}: "
                                             f"{r['error']}" for r in failed)]
    if plot:
        lines += ["", f"![accuracy vs latency]({plot})"]
    fp = {(r["fingerprint"] or {}).get("cpu") for r in ok if r.get("fingerprint")}
    if fp:
        lines += ["", f"Device CPU: {', '.join(sorted(str(c) for c in fp))}."]
    lines.append(END)
    return "\n".join(lines) + "\n"


def write_comparison(run: str | Path) -> Path:
    """Rewrite ``run/report.md`` with its device comparison (from ``run/compare/records.jsonl`` and its plots)."""
    from edgenas.report import write_markdown

    return write_markdown(run)


def run_compare(run: str | Path, reach, formats: tuple[str, ...] | None = None,
                precisions: tuple[str, ...] = ("fp32", "int8"), baselines: tuple[str, ...] = COMPARE_BASELINES,
                weights: dict[str, str] | None = None, calib: int = 300, threads: int | None = None,
                batch: int | None = None, bench_options=None, data: str | None = None, data_root: str | None = None,
                samples: int = 1000, progress: bool = True) -> tuple[list[dict], Path]:
    """The Python form of ``edgenas compare``: the run's network and the baselines, exported alike, measured alike.

    Every model is exported at the run's input resolution in ``formats`` (default: the
    format of the device's runtime) and measured on the device with the same settings;
    the records go to ``RUN/compare/`` and a "Device comparison" section into ``RUN/report.md``.

    Returns:
        (the records, the report written).
    """
    from bench.runtimes.base import format_of_runtime
    from devices.profiles import load_profile
    from edgenas.deploy.sweep import SweepPlan, sweep_devices
    from edgenas.space.evolved import load_spec

    run = Path(run)
    profile = load_profile(reach.device)
    resolution = load_spec(run / "arch.json").resolution  # baselines at the run's input size
    plan = SweepPlan(models=(str(run), *baselines), formats=formats or (format_of_runtime(profile.runtime),),
                     precisions=precisions, resolutions=(resolution,), batches=(batch or 1,),
                     threads=(threads or profile.threads,), weights=dict(weights or {}), calib=calib)
    records, _ = sweep_devices(plan, run / "compare", reach, bench_options=bench_options, data=data,
                               data_root=data_root, samples=samples, progress=progress)
    return records, write_comparison(run)
