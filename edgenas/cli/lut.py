"""``edgenas lut build|predict|validate`` and ``edgenas space sample``: latency tables of the search spaces."""

from __future__ import annotations

import json

import click

from edgenas.cli.device_options import reach_of, transport_options
from edgenas.cli.params import CommaList

def _space_option(help_text: str):
    from edgenas.latency.spaces import LATENCY_SPACES
    from edgenas.space.spec import SPACE_NAME

    return click.option("--space", "space_name", type=click.Choice(LATENCY_SPACES.names()), default=SPACE_NAME,
                        show_default=True, help=help_text)


def _timing_options(f):
    for option in reversed([
        click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True),
        click.option("--warmup", type=click.IntRange(min=0), default=30, show_default=True),
        click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True),
        click.option("--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
                     help="Processes exporting the models, that many at a time; each batch is timed after it is "
                          "exported, with no export running (LiteRT's conversions dominate a build)."),
    ]):
        f = option(f)
    return f


def space_options(f):
    """What frames the space's networks: the cell space's layouts and ops, the evolved space's limits, or the
    stage space's budgets."""
    from edgenas.search.config import SearchConfig
    from edgenas.space.ops import DEFAULT_OPS

    D = SearchConfig()
    for option in reversed([
        click.option("--channels", default="8", show_default=True, type=CommaList(int, "integers", minimum=1),
                     help="Channel counts C of the layouts (comma list; the search's --channels)."),
        click.option("--cells", default="3", show_default=True, type=CommaList(int, "integers", minimum=1),
                     help="Cell counts (comma list)."),
        click.option("--nodes", type=click.IntRange(min=1), default=3, show_default=True),
        click.option("--resolution", default="32", show_default=True, type=CommaList(int, "integers", minimum=1),
                     help="Input sides (comma list)."),
        click.option("--ops", default=",".join(DEFAULT_OPS), show_default=True, type=CommaList(str, "op names"),
                     help="Candidate ops of the space."),
        click.option("--num-classes", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Classifier outputs of the networks (part of the head's key)."),
        _space_option("Search space: the DARTS cell space of light ops, the evolved chain of blocks, or the "
                      "dense conv stages scaled to the budgets."),
        click.option("--seed-channels", type=click.IntRange(min=1), default=D.seed_channels, show_default=True,
                     help="evolved-cnn: the seed network's width."),
        click.option("--seed-blocks", type=click.IntRange(min=1), default=D.seed_blocks, show_default=True),
        click.option("--expansion", type=click.IntRange(min=1), default=D.expansion, show_default=True),
        click.option("--max-blocks", type=click.IntRange(min=1), default=D.max_blocks, show_default=True),
        click.option("--max-channels", type=click.IntRange(min=1), default=D.max_channels, show_default=True),
        click.option("--widen-factor", type=float, default=D.widen_factor, show_default=True),
        click.option("--max-params", type=click.IntRange(min=1), default=D.max_params, show_default=True,
                     help="stages-cnn: the parameter budget its networks are scaled to."),
        click.option("--max-macs", type=click.IntRange(min=1), default=D.max_macs, show_default=True,
                     help="stages-cnn: the MAC budget its networks are scaled to."),
        click.option("--block-networks", type=click.IntRange(min=1), default=32, show_default=True,
                     help="stages-cnn: random networks whose blocks are measured up front."),
    ]):
        f = option(f)
    return f


def _space(options: dict, seed: int, calibration_networks: int = 12, depth: int = 2):
    from edgenas.latency.spaces import SpaceOptions

    limits = ("seed_channels", "seed_blocks", "expansion", "max_blocks", "max_channels", "widen_factor")
    return SpaceOptions(channels=options["channels"], cells=options["cells"], nodes=options["nodes"],
                        resolutions=options["resolution"], ops=options["ops"], num_classes=options["num_classes"],
                        seed=seed, calibration_networks=calibration_networks,
                        evolve=tuple((k, options[k]) for k in limits), depth=depth,
                        max_params=options["max_params"], max_macs=options["max_macs"],
                        block_networks=options["block_networks"])


def _timing(warmup: int, runs: int, timeout: float, jobs: int):
    from edgenas.latency.measure import Timing

    return Timing(warmup, runs, timeout, jobs)


@click.group("lut")
def lut() -> None:
    """Per-device latency tables of the search space and the latency predictor."""


@lut.command("build")
@transport_options
@space_options
@click.option("--runtime", type=click.Choice(["ort", "litert", "openvino"]), default=None,
              help="[default: the device profile's]")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="[default: the device profile's]")
@click.option("--calibration-networks", type=click.IntRange(min=2), default=12, show_default=True,
              help="Whole random networks measured to calibrate the predictor.")
@_timing_options
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="luts", show_default=True)
@click.option("--depth", type=click.IntRange(min=0), default=2, show_default=True,
              help="evolved-cnn: measure every network this many mutations from the seed (the search "
                   "measures what it reaches beyond, when the device is reachable).")
def build(device, host, key, known_hosts, python, space_name, runtime, precision, threads, calibration_networks,
          runs, warmup, timeout, jobs, seed, out, depth, **options) -> None:
    """Measure every block of the space on a device: OUT/<device>[-evolved-cnn]-<runtime>-<precision>.json.

    darts-light: every op at every position and shape it can take (channels,
    stride, input size, cell type), the stem and head. evolved-cnn: the blocks of
    every network within --depth mutations of the seed (an evolve search adds
    what it reaches beyond). Each block and an empty model per input shape are
    exported as small models and measured on the device; then a few whole
    random networks calibrate the sum. Interrupted builds resume.
    """
    from bench.latency_table import LatencyTable
    from edgenas.latency.api import build_lut

    path = build_lut(reach_of(device, host, key, known_hosts, python), space_name,
                     _space(options, seed, calibration_networks, depth), runtime, precision, threads, out,
                     _timing(warmup, runs, timeout, jobs))
    table = LatencyTable.load(path)
    cal = table.calibration
    click.echo(f"{path}: {len(table.entries)} entries, {table.label}; calibration on {cal['networks']} networks: "
               f"a={cal['a']:.3f} b={cal['b'] * 1e3:.2f} us/block c={cal['c']:.4f} ms, fit MAPE {cal['mape_pct']:.1f}%")


@lut.command("predict")
@click.option("--lut", "lut_path", type=click.Path(dir_okay=False), required=True, help="Latency table file.")
@click.argument("archs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def predict(lut_path, archs, as_json) -> None:
    """Predicted latency of each ARCH_JSON (no torch needed)."""
    from edgenas.latency.api import predict_latency

    rows = predict_latency(lut_path, list(archs))
    if as_json:
        click.echo(json.dumps(rows))
        return
    for row in rows:
        click.echo(f"{row['predicted_ms']:.4f} ms  {row['arch']}  ({row['table']})")


@lut.command("validate")
@transport_options
@click.option("--lut", "lut_path", type=click.Path(dir_okay=False), default=None,
              help="[default: luts/<device>-<runtime>-<precision>.json]")
@click.option("--runtime", type=click.Choice(["ort", "litert", "openvino"]), default=None)
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True)
@click.option("--samples", type=click.IntRange(min=2), default=100, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=1, show_default=True,
              help="Seed of the held-out architectures (the calibration used another).")
@_timing_options
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Scatter plot PNG. [default: next to the table]")
@_space_option("Which table of the device: the cell space's, the evolved space's, or the stage space's.")
@click.option("--json", "as_json", is_flag=True)
def validate(device, host, key, known_hosts, python, lut_path, runtime, precision, samples, seed, runs, warmup,
             timeout, jobs, plot, space_name, as_json) -> None:
    """Random held-out architectures: predicted vs measured latency (MAPE, within 10%, Spearman)."""
    from edgenas.latency.api import validate_lut

    result = validate_lut(reach_of(device, host, key, known_hosts, python), space_name, lut_path, runtime,
                          precision, samples, seed, _timing(warmup, runs, timeout, jobs), plot)
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"{result['label']}: {result['n']} held-out networks, MAPE {result['mape_pct']:.1f}%, "
               f"{100 * result['within_10pct']:.0f}% within +/-10%, Spearman {result['spearman']:.3f}; "
               f"plot {result['plot']}")
    if result.get("fitted"):
        f = result["fitted"]
        click.echo(f"  before their blocks were measured (the fit a search scales with): MAPE {f['mape_pct']:.1f}%, "
                   f"{100 * f['within_10pct']:.0f}% within +/-10%, Spearman {f['spearman']:.3f}")


@click.group("space")
def space() -> None:
    """The search space: random architectures."""


@space.command("sample")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="How many architectures.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@space_options
def sample(n, seed, out, space_name, **options) -> None:
    """Write N random arch.json files of the space (also the random-search baseline)."""
    from edgenas.latency.api import sample_architectures

    sample_architectures(space_name, _space(options, seed), n, seed, out)
    click.echo(f"{n} architectures in {out}")
