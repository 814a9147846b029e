"""``edgenas export``: freeze, quantize and export a network to ONNX, TFLite and OpenVINO, each artifact verified.

torch and the converters are imported only when the command runs (:func:`edgenas.deploy.export.run_export`).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgenas.cli.params import CommaList, plugin_option

DEFAULT_FORMATS = "onnx"
DEFAULT_PRECISIONS = "fp32"
_FLOATS = CommaList(float, "numbers")


def _print_table(manifest, out_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{out_dir}/manifest.json")
    for column in ("format", "prec", "status", "KiB", "top-1 agree", "max |diff|", "acc", "torch acc", "export s"):
        table.add_column(column, justify="left" if column in ("format", "prec", "status") else "right")
    for a in manifest.artifacts:
        p = a.parity or {}
        pct = lambda key: f"{p[key]:.1%}" if key in p else "-"  # noqa: E731
        table.add_row(a.format, a.precision, a.status, f"{a.bytes / 1024:.1f}" if a.bytes else "-",
                      pct("top1_agreement"), f"{p['max_abs_diff']:.1g}" if p else "-", pct("accuracy"),
                      pct("reference_accuracy"), f"{a.export_time_s:.2f}" if a.export_time_s is not None else "-")
    Console().print(table)


@click.command("export")
@click.argument("target", metavar="RUN_DIR_OR_MODEL")
@click.option("--format", "formats", default=DEFAULT_FORMATS, show_default=True,
              help="Comma-separated formats: onnx, tflite, openvino.")
@click.option("--precision", "precisions", default=DEFAULT_PRECISIONS, show_default=True,
              help="Comma-separated precisions: fp32, fp16, int8.")
@click.option("--calib", type=click.IntRange(min=0), default=300, show_default=True,
              help="INT8 calibration images, drawn (seeded) from the training data.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Export directory. [default: RUN_DIR/exports, or exports/<name> for a baseline]")
@click.option("--dynamic-batch", is_flag=True, help="Export a dynamic batch dimension where the format allows.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Static batch size of the input.")
@click.option("--resolution", type=click.IntRange(min=8), default=None,
              help="Input side in pixels. [default: the spec's, 32 for a baseline]")
@click.option("--num-classes", type=click.IntRange(min=1), default=None, help="Baselines only. [default: 10]")
@click.option("--width", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Width multiplier, baselines only (mobilenet_v2 --width 0.35).")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="State-dict file to load. [default: a search run's fine-tuning (see --finetune), else its "
                   "weights.pt; random for a baseline]")
@click.option("--finetune", "finetune", default=None,
              help="A search run's fine-tuning to export (a directory name under RUN/finetune/). [default: the only "
                   "one, else the best by hold-out accuracy]")
@click.option("--data", default=None, help="Data for calibration and parity: synthetic, cifar10, imagefolder. "
              "[default: the run's config.yaml, else synthetic]")
@click.option("--data-root", type=click.Path(), default=None, help="Where the data set's files are.")
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the data draws. [default: the run's]")
@click.option("--parity-samples", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Held-out images for the parity check.")
@click.option("--mean", type=_FLOATS, default=None,
              help="Normalisation mean per channel in [0, 1] units, e.g. 0.4914,0.4822,0.4465. "
              "[default: the run's arch.json, else the data's usual one]")
@click.option("--std", type=_FLOATS, default=None, help="Normalisation std per channel (with --mean).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as one JSON object.")
@plugin_option
def export(target: str, formats: str, precisions: str, calib: int, out: str | None, dynamic_batch: bool, batch: int,
           resolution: int | None, num_classes: int | None, width: float | None, weights: str | None,
           data: str | None, data_root: str | None, seed: int | None, parity_samples: int,
           mean: tuple[float, ...] | None, std: tuple[float, ...] | None, as_json: bool,
           finetune: str | None) -> None:
    """Export RUN_DIR_OR_MODEL to deployable artifacts, each checked against PyTorch.

    RUN_DIR_OR_MODEL is a search run directory (its fine-tuning from
    RUN/finetune/, said in one line; without one, its search weights and a
    warning that the classifier was never trained; data defaults from its
    config.yaml), a fine-tuning directory, an arch.json (random weights
    unless --weights) or a baseline: fast_cnn, resnet20, mobilenet_v3_small,
    mobilenet_v2 (--width 0.35), efficientnet_b0.
    Every artifact is loaded in its runtime and compared with PyTorch on
    held-out images; the results go to OUT/manifest.json with labels.txt.

    \b
    Examples:
      edgenas export runs/demo --format onnx --precision fp32,int8
      edgenas export mobilenet_v3_small --resolution 96 --format onnx,openvino --json
    """
    def warn(message: str) -> None:
        click.echo(f"warning: {message}", err=True)

    from edgenas.deploy.export import run_export

    manifest, out_dir = run_export(
        target, formats, precisions, out=out, calib=calib, dynamic_batch=dynamic_batch, resolution=resolution,
        num_classes=num_classes, width=width, weights=weights, data=data, data_root=data_root, seed=seed,
        parity_samples=parity_samples, mean=mean, std=std, batch=batch, warn=warn, finetune=finetune,
        note=lambda message: click.echo(message, err=True))
    for a in manifest.artifacts:
        if a.warning:  # an INT8 accuracy drop beyond 2 points: loud, but not an error
            click.secho(f"WARNING {a.format}/{a.precision}: {a.warning}", err=True, fg="red", bold=True)
    if as_json:
        click.echo(json.dumps(manifest.to_dict()))
    else:
        _print_table(manifest, out_dir)
