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


def _run(plan, out, device, host, key, known_hosts, python, options, data, data_root, samples, retry_failed):
    from edgenas.sweep import run_sweep

    profile, transport = open_device(device, host, key, known_hosts, python)
    cache = DataCache(data, data_root, samples)
    update, close = _progress_printer(True)
    try:
        return run_sweep(plan, out, transport.run_job, profile, options, cache if data else None,
                         retry_failed=retry_failed, progress=update,
                         warn=lambda m: click.echo(f"warning: {m}", err=True))
    finally:
        close()
        transport.close()
        cache.close()


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
@transport_options
@measure_options
@data_options
def sweep(models, out, formats, precisions, resolutions, batches, thread_counts, weights, calib, retry_failed,
          device, host, key, known_hosts, python, threads, batch, warmup, runs, runtime, inference_precision,
          timeout, runtime_options, data, data_root, samples) -> None:
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
    profile = load_profile(device)
    plan = SweepPlan(models=tuple(models), formats=formats, precisions=precisions,
                     resolutions=resolutions or (None,), batches=batches,
                     threads=thread_counts or (profile.threads,), weights=weights, calib=calib)
    options = BenchOptions(warmup=warmup, runs=runs, runtime=runtime, inference_precision=inference_precision,
                           timeout=timeout, extra=runtime_options)
    records = _run(plan, out, device, host, key, known_hosts, python, options, data, data_root, samples,
                   retry_failed)
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
