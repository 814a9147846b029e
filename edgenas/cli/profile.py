"""``edgenas profile``: parameters and MACs of a baseline, a run directory or an arch.json.

torch is imported only when the command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import json

import click

from edgenas.cli.params import plugin_option
from edgenas.errors import ConfigError

# the defaults, for --help; profile_target owns them
DEFAULT_RESOLUTION, DEFAULT_WIDTH, DEFAULT_NUM_CLASSES = 32, 1.0, 10


def _print_table(report, share: dict[str, float], max_params: int, max_macs: int) -> None:
    from rich.console import Console
    from rich.table import Table

    title = report.name if report.width is None else f"{report.name} {report.width:g}x"
    table = Table(title=title, show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("params", f"{report.params / 1e6:.3f} M ({report.params:,}; {100 * share['params']:.0f}% of "
                            f"{max_params:,})")
    table.add_row("MACs", f"{report.macs / 1e6:.2f} M ({report.macs:,}; {100 * share['macs']:.0f}% of "
                          f"{max_macs / 1e6:g}M)")
    table.add_row("resolution", f"{report.resolution}x{report.resolution}")
    if report.width is not None:
        table.add_row("width", f"{report.width:g}")
    table.add_row("classes", str(report.num_classes))
    Console().print(table)


def _run_budgets(target: str) -> dict:
    """The budgets a search run directory's ``config.yaml`` records (``{}`` for anything else)."""
    from pathlib import Path

    from edgenas.cli.yamlfile import read_yaml_options

    path = Path(target) / "config.yaml"
    if not path.is_file():
        return {}
    try:
        options = read_yaml_options(str(path))
    except ConfigError:
        return {}  # profiling counts the network; a damaged config only loses the run's budgets
    return {k: v for k in ("max_params", "max_macs") if isinstance(v := options.get(k), int) and v > 0}


@click.command("profile")
@click.argument("target", metavar="NAME_OR_RUN_DIR_OR_ARCH_JSON")
@click.option(
    "--resolution",
    type=click.IntRange(min=1),
    default=None,
    help=f"Input side in pixels. [default: {DEFAULT_RESOLUTION} for a baseline, the spec's own for an arch.json]",
)
@click.option(
    "--width",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help=f"Width multiplier, baselines only. [default: {DEFAULT_WIDTH:g}, or the name's suffix as in mobilenet_v2_035]",
)
@click.option(
    "--num-classes",
    type=click.IntRange(min=1),
    default=None,
    help=f"Classifier outputs, baselines only. [default: {DEFAULT_NUM_CLASSES}]",
)
@click.option("--max-params", type=click.IntRange(min=1), default=None,
              help="Parameter budget the share used is reported against. [default: a run's own, else 1,000,000]")
@click.option("--max-macs", type=click.IntRange(min=1), default=None,
              help="MAC budget the share used is reported against. [default: a run's own, else 100,000,000]")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@plugin_option
def profile(target: str, resolution: int | None, width: float | None, num_classes: int | None, max_params: int,
            max_macs: int, as_json: bool) -> None:
    """Count parameters and MACs of NAME_OR_RUN_DIR_OR_ARCH_JSON.

    The target is a baseline (mobilenet_v2, mobilenet_v3_small,
    efficientnet_b0; a width suffix such as mobilenet_v2_035 is accepted), a
    run directory holding arch.json, or an arch.json file. MACs are
    multiply-accumulates of one image (FLOPs / 2); the SSL projector of a
    searched network is not counted. Baselines at 64 pixels or less use the
    small-input stem (see edgenas.models.baselines).

    \b
    Examples:
      edgenas profile mobilenet_v2 --width 0.35
      edgenas profile runs/demo --json
    """
    from edgenas.models.profile import profile_target

    report = profile_target(target, resolution=resolution, width=width, num_classes=num_classes)
    own = _run_budgets(target)
    max_params = max_params or own.get("max_params") or 1_000_000
    max_macs = max_macs or own.get("max_macs") or 100_000_000
    share = report.budget_share(max_params, max_macs)
    if as_json:
        click.echo(json.dumps({**report.to_dict(), "budget_share": {k: round(v, 4) for k, v in share.items()}}))
    else:
        _print_table(report, share, max_params, max_macs)
