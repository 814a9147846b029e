"""``edgenas sweep`` and ``edgenas compare``: many measurements on one device, resumable, with a CSV and plots.

The work is :func:`edgenas.deploy.sweep.run_sweep` and :func:`edgenas.deploy.compare.run_compare`.
"""

from __future__ import annotations

from pathlib import Path

import click

from edgenas.cli.bench import print_records
from edgenas.cli.device_options import data_options, measure_options, reach_of, transport_options
from edgenas.cli.params import CommaList, key_values, plugin_option
from edgenas.deploy.compare import COMPARE_BASELINES
from edgenas.errors import ConfigError

_WEIGHTS = key_values("MODEL=PATH", as_dict=True)


def _options(warmup, runs, runtime, inference_precision, timeout, runtime_options, energy_seconds):
    from edgenas.deploy.bench import BenchOptions

    return BenchOptions(warmup=warmup, runs=runs, runtime=runtime, inference_precision=inference_precision,
                        timeout=timeout, extra=runtime_options, energy_seconds=energy_seconds)


@click.command("sweep")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@click.option("--out", type=click.Path(file_okay=False), required=True,
              help="Sweep directory: records.jsonl (resumable), records.csv, plots/, exports/.")
@click.option("--formats", default="onnx", show_default=True, type=CommaList(str),
              help="onnx,tflite,openvino,tensorrt (ONNX exports measured as engines built on the device)")
@click.option("--precisions", default="fp32", show_default=True, type=CommaList(str), help="fp32,fp16,int8")
@click.option("--resolutions", default=None, type=CommaList(int, "integers"),
              help="Input sides, e.g. 32,96. [default: each model's own]")
@click.option("--batches", default="1", show_default=True, type=CommaList(int, "integers"), help="Batch sizes, e.g. 1,8.")
@click.option("--thread-counts", "thread_counts", default=None, type=CommaList(int, "integers"),
              help="Thread counts, e.g. 1,2,4. [default: the device profile's threads]")
@click.option("--weights", multiple=True, callback=_WEIGHTS, help="MODEL=PATH state dict (repeatable).")
@click.option("--calib", type=click.IntRange(min=1), default=300, show_default=True, help="INT8 calibration images.")
@click.option("--retry-failed", is_flag=True, help="Measure again what failed in an earlier run of this sweep.")
@click.option("--devices", default=None, type=CommaList(str),
              help="A fleet: device profiles measured at the same time, one measurement per device at a time "
                   "(each profile names its host; --key and --known-hosts apply to all). Instead of --device.")
@click.option("--retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="More tries of a measurement that hung or crashed before it is recorded as failed.")
@transport_options
@measure_options
@data_options
@plugin_option
def sweep(models, out, formats, precisions, resolutions, batches, thread_counts, weights, calib, retry_failed,
          devices, retries, device, host, key, known_hosts, python, threads, batch, warmup, runs, runtime,
          inference_precision, timeout, energy_seconds, runtime_options, data, data_root, samples) -> None:
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
    from edgenas.deploy.sweep import SweepPlan, run_sweep

    if threads is not None or batch is not None:
        raise ConfigError("sweep takes --thread-counts and --batches (lists), not --threads/--batch")
    if devices and host:
        raise ConfigError("--host names one device; with --devices each profile names its own host")
    profiles = [load_profile(d) for d in (devices or (device,))]
    plan = SweepPlan(models=tuple(models), formats=formats, precisions=precisions,
                     resolutions=resolutions or (None,), batches=batches,
                     threads=thread_counts or (profiles[0].threads,), weights=weights, calib=calib)
    records, summaries = run_sweep(
        plan, out, reach_of(device, host, key, known_hosts, python), devices,
        _options(warmup, runs, runtime, inference_precision, timeout, runtime_options, energy_seconds), data,
        data_root, samples,
        retry_failed, retries, warn=lambda m: click.echo(f"warning: {m}", err=True))
    for s in summaries or ():
        state = f"dropped out ({s['dropped_out']})" if s["dropped_out"] else "ok"
        click.echo(f"{s['device']}: {s['measured']} measured, {s['failed']} failed, {s['wall_s']:.1f} s, {state}")
    print_records(records, title=f"{out}/records.jsonl")
    click.echo(f"{len(records)} records; CSV {Path(out) / 'records.csv'}; plots in {Path(out) / 'plots'}")
    failed = [r for r in records if "error" in r]
    if failed:
        click.echo(f"warning: {len(failed)} measurement(s) failed; see their 'error' in records.jsonl", err=True)


@click.command("compare")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--formats", default=None, type=CommaList(str),
              help="Formats to compare in. [default: the device's runtime's format]")
@click.option("--precisions", default="fp32,int8", show_default=True, type=CommaList(str))
@click.option("--baselines", default=",".join(COMPARE_BASELINES), show_default=True, type=CommaList(str))
@click.option("--weights", multiple=True, callback=_WEIGHTS,
              help="MODEL=PATH state dict, e.g. trained baselines (repeatable).")
@click.option("--calib", type=click.IntRange(min=1), default=300, show_default=True)
@transport_options
@measure_options
@data_options
@plugin_option
def compare(run_dir, formats, precisions, baselines, weights, calib, device, host, key, known_hosts, python,
            threads, batch, warmup, runs, runtime, inference_precision, timeout, energy_seconds, runtime_options, data,
            data_root, samples) -> None:
    """Measure the searched network of RUN_DIR next to the baselines on one device.

    All models are exported the same way (same formats, precisions, input
    resolution as the run) and measured on the same device with the same
    settings. Writes RUN_DIR/compare/ (records, CSV, plots) and a "Device
    comparison" section with the table and the accuracy-vs-latency plot into
    RUN_DIR/report.md. Accuracy needs --data (held-out labelled images).
    """
    from edgenas.deploy.compare import run_compare

    records, report = run_compare(run_dir, reach_of(device, host, key, known_hosts, python), formats, precisions,
                                  baselines, weights, calib, threads, batch,
                                  _options(warmup, runs, runtime, inference_precision, timeout, runtime_options,
                                           energy_seconds),
                                  data, data_root, samples)
    print_records(records, title=f"{Path(run_dir).name} vs baselines on {device}")
    click.echo(f"table and plot in {report}")
