"""``edgenas sweep`` and ``edgenas compare``: many measurements on one device, resumable, with a CSV and plots."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from edgenas.cli.bench import (
    BenchOptions,
    DataCache,
    data_options,
    measure_options,
    open_device,
    print_records,
    transport_options,
)
from edgenas.errors import ConfigError

#: the baselines every comparison measures next to the searched network
COMPARE_BASELINES = ("mobilenet_v2_035", "mobilenet_v3_small", "efficientnet_b0")


def _csv(kind):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            items = tuple(kind(v) for v in str(value).split(",") if v.strip())
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a comma-separated list") from None
        if not items:
            raise click.BadParameter("empty list")
        return items
    return convert


def _weights(ctx, param, values):
    out = {}
    for value in values:
        model, sep, path = value.partition("=")
        if not sep or not model or not path:
            raise click.BadParameter(f"{value!r} is not MODEL=PATH")
        out[model] = path
    return out


def _progress_printer(enabled: bool):
    """A rich progress bar driven by ``(what, done, total)`` calls; returns (callback, close)."""
    if not enabled or not sys.stderr.isatty():
        return (lambda what, done, total: None), (lambda: None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    task = bar.add_task("sweep", total=None)

    def update(what: str, done: int, total: int) -> None:
        bar.update(task, description=what, completed=done, total=total)
    return update, bar.stop


def _run(plan, out, device, host, key, known_hosts, python, options, data, data_root, samples, retry_failed,
         retries=0):
    from edgenas.sweep import run_sweep

    profile, transport = open_device(device, host, key, known_hosts, python)
    cache = DataCache(data, data_root, samples)
    update, close = _progress_printer(True)
    try:
        return run_sweep(plan, out, transport.run_job, profile, options, cache if data else None,
                         retry_failed=retry_failed, progress=update,
                         warn=lambda m: click.echo(f"warning: {m}", err=True), retries=retries)
    finally:
        close()
        transport.close()
        cache.close()


def _run_fleet(plan, out, profiles, key, known_hosts, python, options, data, data_root, samples, retry_failed,
               retries):
    """Connect to every device (one that cannot be reached is reported and left out), sweep them all at once."""
    import json

    from bench.files import atomic_write_text
    from devices.errors import TransportError
    from devices.transport import open_transport
    from edgenas.sweep import run_fleet

    connected, unreachable = [], {}
    for profile in profiles:
        try:
            connected.append((profile, open_transport(profile, key=key, known_hosts=known_hosts, python=python)))
        except TransportError as exc:
            unreachable[profile.name] = str(exc)
            click.echo(f"warning: {profile.name} left out: {exc}", err=True)
    if not connected:
        raise ConfigError("no device of the fleet could be reached: " + "; ".join(f"{k}: {v}"
                                                                               for k, v in unreachable.items()))
    cache = DataCache(data, data_root, samples)
    update, close = _progress_printer(True)
    try:
        records, summaries = run_fleet(plan, out, [(p, t.run_job) for p, t in connected], options,
                                       cache if data else None, retry_failed=retry_failed, progress=update,
                                       warn=lambda m: click.echo(f"warning: {m}", err=True), retries=retries)
    finally:
        close()
        for _, transport in connected:
            transport.close()
        cache.close()
    summaries += [{"device": name, "measured": 0, "failed": 0, "dropped_out": reason, "wall_s": 0.0}
                  for name, reason in unreachable.items()]
    atomic_write_text(Path(out) / "fleet.json", json.dumps(summaries, indent=2) + "\n")
    for s in summaries:
        state = f"dropped out ({s['dropped_out']})" if s["dropped_out"] else "ok"
        click.echo(f"{s['device']}: {s['measured']} measured, {s['failed']} failed, {s['wall_s']:.1f} s, {state}")
    return records


@click.command("sweep")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Sweep directory: records.jsonl (resumable), records.csv, plots/, exports/.")
@click.option("--formats", default="onnx", show_default=True, callback=_csv(str), help="onnx,tflite,openvino")
@click.option("--precisions", default="fp32", show_default=True, callback=_csv(str), help="fp32,fp16,int8")
@click.option("--resolutions", default=None, callback=_csv(int),
              help="Input sides, e.g. 32,96. [default: each model's own]")
@click.option("--batches", default="1", show_default=True, callback=_csv(int), help="Batch sizes, e.g. 1,8.")
@click.option("--thread-counts", "thread_counts", default=None, callback=_csv(int),
              help="Thread counts, e.g. 1,2,4. [default: the device profile's threads]")
@click.option("--weights", multiple=True, callback=_weights, help="MODEL=PATH state dict (repeatable).")
@click.option("--calib", type=click.IntRange(min=1), default=300, show_default=True, help="INT8 calibration images.")
@click.option("--retry-failed", is_flag=True, help="Measure again what failed in an earlier run of this sweep.")
@click.option("--devices", default=None, callback=_csv(str),
              help="A fleet: device profiles measured at the same time, one measurement per device at a time "
                   "(each profile names its host; --key and --known-hosts apply to all). Instead of --device.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="More tries of a measurement that hung or crashed before it is recorded as failed.")
@transport_options
@measure_options
@data_options
def sweep(models, out, formats, precisions, resolutions, batches, thread_counts, weights, calib, retry_failed,
          devices, retries, device, host, key, known_hosts, python, threads, batch, warmup, runs, runtime,
          inference_precision, timeout, runtime_options, data, data_root, samples) -> None:
    """Measure MODELs over formats x precisions x resolutions x batches x threads on one device.

    MODEL is a run directory, an arch.json or a baseline name. Every
    measurement is appended to OUT/records.jsonl as it finishes; running the
    same command again resumes and measures nothing twice. A failed
    measurement is recorded with its reason and the sweep goes on.

    \b
    Example:
      edgenas sweep runs/demo mobilenet_v3_small --formats onnx,tflite --precisions fp32,int8 \\
          --resolutions 32,96 --thread-counts 1,2 --out sweeps/local
    """
    from devices.profiles import load_profile
    from edgenas.sweep import SweepPlan

    if threads is not None or batch is not None:
        raise ConfigError("sweep takes --thread-counts and --batches (lists), not --threads/--batch")
    if devices and host:
        raise ConfigError("--host names one device; with --devices each profile names its own host")
    profiles = [load_profile(d) for d in (devices or (device,))]
    plan = SweepPlan(models=tuple(models), formats=formats, precisions=precisions,
                     resolutions=resolutions or (None,), batches=batches,
                     threads=thread_counts or (profiles[0].threads,), weights=weights, calib=calib)
    options = BenchOptions(warmup=warmup, runs=runs, runtime=runtime, inference_precision=inference_precision,
                           timeout=timeout, extra=runtime_options)
    if devices:
        records = _run_fleet(plan, out, profiles, key, known_hosts, python, options, data, data_root, samples,
                             retry_failed, retries)
    else:
        records = _run(plan, out, device, host, key, known_hosts, python, options, data, data_root, samples,
                       retry_failed, retries)
    print_records(records, title=f"{out}/records.jsonl")
    click.echo(f"{len(records)} records; CSV {Path(out) / 'records.csv'}; plots in {Path(out) / 'plots'}")
    failed = [r for r in records if "error" in r]
    if failed:
        click.echo(f"warning: {len(failed)} measurement(s) failed; see their 'error' in records.jsonl", err=True)


@click.command("compare")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--formats", default=None, callback=_csv(str),
              help="Formats to compare in. [default: the device's runtime's format]")
@click.option("--precisions", default="fp32,int8", show_default=True, callback=_csv(str))
@click.option("--baselines", default=",".join(COMPARE_BASELINES), show_default=True, callback=_csv(str))
@click.option("--weights", multiple=True, callback=_weights,
              help="MODEL=PATH state dict, e.g. trained baselines (repeatable).")
@click.option("--calib", type=click.IntRange(min=1), default=300, show_default=True)
@transport_options
@measure_options
@data_options
def compare(run_dir, formats, precisions, baselines, weights, calib, device, host, key, known_hosts, python,
            threads, batch, warmup, runs, runtime, inference_precision, timeout, runtime_options, data, data_root,
            samples) -> None:
    """Measure the searched network of RUN_DIR next to the baselines on one device.

    All models are exported the same way (same formats, precisions, input
    resolution as the run) and measured on the same device with the same
    settings. Writes RUN_DIR/compare/ (records, CSV, plots) and a "Device
    comparison" section with the table and the accuracy-vs-latency plot into
    RUN_DIR/report.md. Accuracy needs --data (held-out labelled images).
    """
    from devices.profiles import load_profile
    from edgenas.compare import write_comparison
    from edgenas.space.evolved import load_spec
    from edgenas.sweep import SweepPlan

    profile = load_profile(device)
    fmt = {"ort": "onnx", "litert": "tflite", "openvino": "openvino"}[profile.runtime]
    run = Path(run_dir)
    resolution = load_spec(run / "arch.json").resolution  # baselines at the run's input size
    plan = SweepPlan(models=(str(run), *baselines), formats=formats or (fmt,), precisions=precisions,
                     resolutions=(resolution,), batches=(batch or 1,), threads=(threads or profile.threads,),
                     weights=weights, calib=calib)
    options = BenchOptions(warmup=warmup, runs=runs, runtime=runtime, inference_precision=inference_precision,
                           timeout=timeout, extra=runtime_options)
    records = _run(plan, run / "compare", device, host, key, known_hosts, python, options, data, data_root,
                   samples, retry_failed=False)
    print_records(records, title=f"{run.name} vs baselines on {device}")
    report = write_comparison(run, records, device)
    click.echo(f"table and plot in {report}")
