"""``edgenas bench``: measure exported models in their real runtimes, here or on a board over SSH.

Each artifact is measured by :mod:`bench.worker` in a fresh process on the
device (so that peak memory is the model's alone); the transport (local
subprocess or SSH) comes from the device profile and ``--host``.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = ["BenchOptions", "bench", "run_bench", "transport_options"]


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


def transport_options(f):
    """The options that say which device and how to reach it (shared by bench, sweep, compare)."""
    options = [
        click.option("--device", "device", default="local", show_default=True,
                     help="Device profile (edgenas devices list)."),
        click.option("--host", default=None, help="USER@HOST[:PORT] of an SSH device (overrides the profile)."),
        click.option("--key", type=click.Path(dir_okay=False), default=None, help="SSH private key file."),
        click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
                     help="known_hosts file to verify the host key against. [default: ~/.ssh/known_hosts]"),
        click.option("--python", "python", default=None,
                     help="Python on the device that runs the bench worker. [default: the profile's]"),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _pairs(ctx, param, values) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE")
        pairs.append((key, val))
    return tuple(pairs)


def measure_options(f):
    options = [
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Inference threads. [default: the device profile's]"),
        click.option("--batch", type=click.IntRange(min=1), default=None,
                     help="Batch size. [default: the artifact's own]"),
        click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True,
                     help="Untimed runs before timing."),
        click.option("--runs", type=click.IntRange(min=1), default=300, show_default=True, help="Timed runs."),
        click.option("--runtime", default=None, help="ort, litert or openvino. [default: by file extension]"),
        click.option("--inference-precision", type=click.Choice(["f32", "bf16", "f16"]), default=None,
                     help="OpenVINO only: compute precision. [default: the artifact's own (f32 for FP32)]"),
        click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
                     help="Seconds each measurement may take on the device."),
        click.option("--option", "runtime_options", multiple=True, callback=_pairs, metavar="KEY=VALUE",
                     help="Runtime setting, repeatable: ort providers=CUDAExecutionProvider,CPUExecutionProvider "
                     "or a session config entry; openvino compile properties; litert op_resolver=..."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def data_options(f):
    options = [
        click.option("--data", default=None,
                     help="Labelled data for accuracy: synthetic, cifar10 or imagefolder (held-out images)."),
        click.option("--data-root", type=click.Path(), default=None, help="Where the data set's files are."),
        click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
                     help="Labelled images for accuracy."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def open_device(device: str, host: str | None, key: str | None, known_hosts: str | None, python: str | None):
    """(profile, transport) for the device flags."""
    from devices.profiles import load_profile
    from devices.transport import open_transport

    profile = load_profile(device)
    return profile, open_transport(profile, host=host, key=key, known_hosts=known_hosts, python=python)


def resolution_of(target) -> int:
    """The target's input side: from its manifest, else read from the artifact on this host."""
    if target.resolution:
        return target.resolution
    from bench.runtimes.base import open_runner

    with open_runner(target.path) as runner:
        return int(runner.input_shape[-1] if runner.input_shape[1] in (1, 3) else runner.input_shape[2])


class DataCache:
    """Labelled ``.npz`` files per resolution, drawn once per command in a temporary directory."""

    def __init__(self, name: str | None, root: str | None, samples: int, seed: int = 0) -> None:
        self.name, self.root, self.samples, self.seed = name, root, samples, seed
        self._dir: tempfile.TemporaryDirectory | None = None
        self._files: dict[int, Path] = {}

    def path_for(self, resolution: int) -> Path | None:
        if not self.name:
            return None
        if resolution not in self._files:
            from edgenas.bench_data import labelled_npz

            if self._dir is None:
                self._dir = tempfile.TemporaryDirectory(prefix="edgenas-bench-")
            self._files[resolution] = labelled_npz(self.name, self.root, resolution, self.samples, self.seed,
                                                   Path(self._dir.name) / f"{self.name}-{resolution}.npz")
        return self._files[resolution]

    def close(self) -> None:
        if self._dir is not None:
            self._dir.cleanup()


def job_for(target, options: BenchOptions, profile, data: Path | None, meta: dict[str, Any] | None = None) -> dict:
    from bench.worker import make_job

    return make_job(
        target.path, runtime=options.runtime, threads=options.threads or profile.threads, batch=options.batch,
        warmup=options.warmup, runs=options.runs, inference_precision=options.inference_precision,
        extra=[list(pair) for pair in options.extra], data=str(data) if data else None,
        meta={"device": profile.name, "model": target.model, **target.info, **(meta or {})})


def finish_record(record: dict, profile, target) -> dict:
    """The worker's record with the device name on top (or, for a failure, a record of the failure)."""
    if "error" in record and "p50_ms" not in record:
        return {"device": profile.name, "artifact": target.path.name, "model": target.model,
                "format": target.format, "precision": target.precision, "error": record["error"],
                "error_type": record.get("error_type")}
    return {"device": profile.name, "model": target.model, **record}


def run_bench(items: list[str], options: BenchOptions = BenchOptions(), device: str = "local",
              host: str | None = None, key: str | None = None, known_hosts: str | None = None,
              python: str | None = None, data: str | None = None, data_root: str | None = None,
              samples: int = 1000, out: str | None = None, progress: bool = True) -> list[dict]:
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
    cache = DataCache(data, data_root, samples)
    profile, transport = open_device(device, host, key, known_hosts, python)
    records = []
    try:
        with _progress(progress, len(targets), f"bench on {profile.name}") as advance:
            for target in targets:
                npz = cache.path_for(resolution_of(target)) if data else None
                record = finish_record(transport.run_job(job_for(target, options, profile, npz),
                                                         timeout=options.timeout), profile, target)
                if out:
                    append_jsonl(out, record)
                records.append(record)
                advance()
    finally:
        transport.close()
        cache.close()
    return records


class _progress:
    """A rich progress bar on stderr (nothing when disabled or not a terminal)."""

    def __init__(self, enabled: bool, total: int, description: str) -> None:
        self.enabled, self.total, self.description = enabled and sys.stderr.isatty(), total, description

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TimeElapsedColumn(), console=Console(stderr=True), transient=True)
        self._bar.__enter__()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self._bar.__exit__(*exc)


def print_records(records: list[dict], title: str = "") -> None:
    """A table of records (failed ones marked); wide enough not to wrap when piped."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title or None)
    columns = ("model", "format", "precision", "thr", "batch", "res", "p50 ms", "p90 ms", "p99 ms", "cv %",
               "load ms", "RSS MB", "acc %")
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "format", "precision") else "right")

    def num(record, key, fmt):
        value = record.get(key)
        return "-" if value is None else format(value, fmt)

    for r in records:
        if "error" in r:
            table.add_row(str(r.get("model")), str(r.get("format") or r.get("artifact")),
                          str(r.get("precision") or "-"), *["-"] * 9, "[red]failed[/red]")
            continue
        precision = r["precision"] + (f" ({r['inference_precision']})" if r.get("inference_precision") else "")
        table.add_row(str(r.get("model")), r["format"], precision, str(r["threads"]), str(r["batch"]),
                      str(r.get("resolution", "-")), num(r, "p50_ms", ".3f"), num(r, "p90_ms", ".3f"),
                      num(r, "p99_ms", ".3f"), format(100 * r["cv"], ".1f"), num(r, "load_ms", ".0f"),
                      num(r, "peak_rss_mb", ".0f"), num(r, "accuracy", ".2f"))
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
          inference_precision: str | None, timeout: float, runtime_options: tuple, data: str | None,
          data_root: str | None, samples: int, out: str | None, as_json: bool) -> None:
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
    options = BenchOptions(threads=threads, batch=batch, warmup=warmup, runs=runs, runtime=runtime,
                           inference_precision=inference_precision, timeout=timeout, extra=runtime_options)
    records = run_bench(list(models), options, device=device, host=host, key=key, known_hosts=known_hosts,
                        python=python, data=data, data_root=data_root, samples=samples, out=out)
    if as_json:
        click.echo(json.dumps(records))
    else:
        print_records(records, title=f"device {device}")
    failed = [r for r in records if "error" in r]
    for r in failed:
        click.echo(f"error: {r['artifact']}: {r['error']}", err=True)
    if failed:
        sys.exit(2)
