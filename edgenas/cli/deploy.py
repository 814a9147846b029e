"""``edgenas deploy``: every format x precision measured on the target, the fastest good one bundled for an app.

The work is :func:`edgenas.deploy.deploy.run_deploy`; this module parses the options and prints the table.
"""

from __future__ import annotations

import json

import click

from edgenas.cli.device_options import reach_of
from edgenas.cli.params import CommaList, plugin_option

__all__ = ["deploy", "print_choice"]


def print_choice(choice, title: str) -> None:
    """The candidates, fastest first, with their verdicts."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("format", "precision", "p50 ms", "p99 ms", "RSS MB", "acc %", "drop", "KiB", "verdict"):
        table.add_column(column, justify="left" if column in ("format", "precision", "verdict") else "right")
    style = {"chosen": "bold green", "too inaccurate": "red", "failed": "red"}
    for c in choice.ordered():
        row = c.row()
        verdict = f"[{style[c.verdict]}]{c.verdict}[/]" if c.verdict in style else c.verdict
        if not c.ok:
            reason = " ".join(str(row.get("error") or "").split())[:60]
            table.add_row(c.format, c.precision, *["-"] * 6, f"{verdict}: {reason}")
            continue
        num = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        table.add_row(c.format, c.precision, num(row["p50_ms"], ".3f"), num(row["p99_ms"], ".3f"),
                      num(row["peak_rss_mb"], ".0f"), num(row["accuracy"], ".2f"), num(row["drop_points"], "+.2f"),
                      f"{row['kib']:.0f}", verdict)
    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=140)
    console.print(table)


@click.command("deploy")
@click.argument("run_dir", metavar="RUN")
@click.option("--target", "device", default="local", show_default=True,
              help="Device profile to measure on and deploy to (edgenas devices list).")
@click.option("--host", default=None, help="USER@HOST[:PORT] of an SSH device (overrides the profile).")
@click.option("--key", type=click.Path(dir_okay=False), default=None, help="SSH private key file.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), default=None,
              help="known_hosts file to verify the host key against. [default: ~/.ssh/known_hosts]")
@click.option("--python", "python", default=None, help="Python on the device. [default: the profile's]")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Bundle folder; an earlier bundle there is replaced. [default: RUN/deploy/<device>]")
@click.option("--max-drop", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Accuracy points an artifact may lose against FP32 and still ship.")
@click.option("--formats", default=None, type=CommaList(str),
              help="Formats to measure: onnx, tflite, openvino, tensorrt (the ONNX export as an engine built on the "
                   "device). [default: every one the device has a runtime for]")
@click.option("--precisions", default="fp32,fp16,int8", show_default=True, type=CommaList(str))
@click.option("--finetune", default=None,
              help="The run's fine-tuning to deploy (a name under RUN/finetune/). [default: the only one, else the "
                   "best by hold-out accuracy]")
@click.option("--allow-untrained", is_flag=True,
              help="Deploy a run that was never fine-tuned (its classifier is untrained: chance accuracy).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads. [default: the device profile's]")
@click.option("--warmup", type=click.IntRange(min=0), default=50, show_default=True, help="Untimed runs.")
@click.option("--runs", type=click.IntRange(min=1), default=300, show_default=True, help="Timed runs.")
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True,
              help="Seconds each measurement may take on the device.")
@click.option("--energy-seconds", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="Energy phase per candidate where the device has a meter (Jetson tegrastats, x86 RAPL); 0: none.")
@click.option("--data", default=None, help="Labelled data for accuracy: synthetic, cifar10, imagefolder. "
              "[default: what the network was fine-tuned on]")
@click.option("--data-root", type=click.Path(), default=None, help="Where the data set's files are.")
@click.option("--samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Labelled held-out images for accuracy.")
@click.option("--calib", type=click.IntRange(min=1), default=300, show_default=True,
              help="INT8 calibration images.")
@click.option("--remeasure", is_flag=True, help="Measure every candidate again (earlier records are dropped).")
@click.option("--json", "as_json", is_flag=True, help="Print the choice (bundle, winner, every candidate) as JSON.")
@plugin_option
def deploy(run_dir, device, host, key, known_hosts, python, out, max_drop, formats, precisions, finetune,
           allow_untrained, threads, warmup, runs, timeout, energy_seconds, data, data_root, samples, calib, remeasure,
           as_json) -> None:
    """Measure RUN's network in every format x precision on the target and bundle the fastest good one.

    RUN is a search run (its fine-tuning, chosen as export chooses) or a
    fine-tuning directory. Each candidate is exported here and measured on
    the device (latency, peak memory, accuracy on the labelled hold-out); the
    fastest whose accuracy is within --max-drop points of the FP32 network's
    (PyTorch's, on the same images) wins. The
    bundle holds the artifact, its manifest entry, labels.txt, a model card
    (README.md, with every candidate measured and a plot) and a torch-free
    predict.py. Measurements are kept in RUN/deploy/measurements/ and reused.

    \b
    Examples:
      edgenas deploy runs/demo --target local
      edgenas deploy runs/cifar --target rpi4 --host pi@10.0.0.7 --max-drop 0.5 --json
    """
    from edgenas.deploy.bench import BenchOptions
    from edgenas.deploy.bundle import NoArtifactError
    from edgenas.deploy.deploy import run_deploy

    def note(message: str) -> None:
        click.echo(message, err=True)

    try:
        result = run_deploy(run_dir, reach_of(device, host, key, known_hosts, python), formats, precisions,
                            max_drop, out, finetune, allow_untrained, threads,
                            BenchOptions(warmup=warmup, runs=runs, timeout=timeout, energy_seconds=energy_seconds),
                            data, data_root, samples,
                            calib, remeasure, note=note, warn=lambda m: click.echo(f"warning: {m}", err=True))
    except NoArtifactError as exc:
        print_choice(exc.choice, f"{run_dir} on {device}: no artifact qualifies")
        raise
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    print_choice(result.choice, f"{run_dir} on {result.device}")
    click.echo(result.choice.reason)
    click.echo(f"bundle: {result.bundle}")
    click.echo(f"try it: {result.predict_command}")
