"""``edgenas bench``: measure exported models in their real runtimes, here or on a board over SSH.

The measuring is :func:`edgenas.deploy.bench.run_bench`; this module parses the options and prints the records.
"""

from __future__ import annotations

import json
import sys

import click

from edgenas.cli.device_options import data_options, measure_options, reach_of, transport_options

__all__ = ["bench", "print_records"]


def print_records(records: list[dict], title: str = "") -> None:
    """A table of records (failed ones marked); wide enough not to wrap when piped."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    energy = any(r.get("energy") for r in records)
    columns = ("model", "format", "precision", "thr", "batch", "res", "p50 ms", "p90 ms", "p99 ms", "cv %",
               "load ms", "RSS MB", "acc %") + (("mJ/inf",) if energy else ())
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "format", "precision") else "right")

    def num(record, key, fmt):
        value = record.get(key)
        return "-" if value is None else format(value, fmt)

    for r in records:
        if "error" in r:
            table.add_row(str(r.get("model")), str(r.get("format") or r.get("artifact")),
                          str(r.get("precision") or "-"), *["-"] * 9, "[red]failed[/red]", *["-"] * energy)
            continue
        precision = r["precision"] + (f" ({r['inference_precision']})" if r.get("inference_precision") else "")
        table.add_row(str(r.get("model")), r["format"], precision, str(r["threads"]), str(r["batch"]),
                      str(r.get("resolution", "-")), num(r, "p50_ms", ".3f"), num(r, "p90_ms", ".3f"),
                      num(r, "p99_ms", ".3f"), format(100 * r["cv"], ".1f"), num(r, "load_ms", ".0f"),
                      num(r, "peak_rss_mb", ".0f"), num(r, "accuracy", ".2f"),
                      *([num(r.get("energy") or {}, "mj_per_inference", ".3f")] if energy else []))
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


@click.command("bench")
@click.argument("models", nargs=-1, required=True, metavar="MODEL...")
@transport_options
@measure_options
@data_options
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Append the records to this JSONL file.")
@click.option("--json", "as_json", is_flag=True, help="Print the records as a JSON list (latency keys end in _ms).")
def bench(models: tuple[str, ...], device: str, host: str | None, key: str | None, known_hosts: str | None,
          python: str | None, threads: int | None, batch: int | None, warmup: int, runs: int, runtime: str | None,
          inference_precision: str | None, timeout: float, energy_seconds: float, runtime_options: tuple,
          data: str | None, data_root: str | None, samples: int, out: str | None, as_json: bool) -> None:
    """Measure latency, load time, peak memory (and accuracy with --data) of exported models.

    MODEL is a .onnx, .tflite or OpenVINO .xml file, an export manifest.json,
    an export directory or a run directory (its exports/). Each artifact runs in
    a fresh process on the device, with only numpy and its runtime.

    \b
    Examples:
      edgenas bench runs/demo --threads 1
      edgenas bench model.tflite --device rpi4 --host pi@10.0.0.7 --json
      edgenas bench exports/mobilenet_v3_small --data imagefolder --data-root ~/cifar10-jpg
    """
    from edgenas.deploy.bench import BenchOptions, run_bench

    options = BenchOptions(threads=threads, batch=batch, warmup=warmup, runs=runs, runtime=runtime,
                           inference_precision=inference_precision, timeout=timeout, extra=runtime_options,
                           energy_seconds=energy_seconds)
    records = run_bench(list(models), options, reach_of(device, host, key, known_hosts, python), data=data,
                        data_root=data_root, samples=samples, out=out)
    if as_json:
        click.echo(json.dumps(records))
    else:
        print_records(records, title=f"device {device}")
    failed = [r for r in records if "error" in r]
    for r in failed:
        click.echo(f"error: {r['artifact']}: {r['error']}", err=True)
    if failed:
        sys.exit(2)
