"""``edgenas profile``: parameters and MACs of a baseline, a run directory or an arch.json.

torch is imported only when the command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from edgenas.errors import ConfigError, UnknownNameError

DEFAULT_RESOLUTION = 32
DEFAULT_WIDTH = 1.0
DEFAULT_NUM_CLASSES = 10


@dataclass(frozen=True)
class ProfileReport:
    """What ``edgenas profile`` prints; ``kind`` is ``baseline`` or ``arch``."""

    name: str
    kind: str
    resolution: int
    width: float | None
    num_classes: int
    params: int
    macs: int

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "resolution": self.resolution,
            "width": self.width,
            "num_classes": self.num_classes,
            "params": self.params,
            "macs": self.macs,
        }


def profile_target(
    target: str,
    resolution: int | None = None,
    width: float | None = None,
    num_classes: int | None = None,
) -> ProfileReport:
    """Profile a baseline name, a run directory (holding ``arch.json``) or an ``arch.json``.

    Args:
        target: a baseline name (``mobilenet_v2``, ``mobilenet_v2_035``, ...) or a path.
        resolution: input side in pixels; None: 32 for a baseline, the spec's
            own resolution for an ArchSpec.
        width, num_classes: baselines only (an ArchSpec fixes both); None: 1.0 and 10.

    Raises:
        UnknownNameError: ``target`` is neither a baseline nor an existing path.
        ConfigError: a baseline-only option given for an ArchSpec, or bad values.
        ArchSpecError: the arch.json is missing or malformed.
    """
    from edgenas.models.baselines import build_baseline, resolve_baseline
    from edgenas.profiler import profile_model

    path = Path(target)
    try:
        base, alias_width = resolve_baseline(target)
    except UnknownNameError as exc:
        if not path.exists():
            if path.suffix == ".json" or len(path.parts) > 1:
                raise ConfigError(f"no such file or directory: {target}") from None
            raise UnknownNameError(f"{exc}; nor is it a file or directory") from None
    else:
        if path.exists():
            # A local file named like a baseline would be silently ignored otherwise.
            raise ConfigError(f"{target!r} is both a baseline name and a path; pass the path as ./{target}")
        res = resolution if resolution is not None else DEFAULT_RESOLUTION
        classes = num_classes if num_classes is not None else DEFAULT_NUM_CLASSES
        model = build_baseline(target, num_classes=classes, width=width, resolution=res)
        used_width = width if width is not None else (alias_width if alias_width is not None else DEFAULT_WIDTH)
        profile = profile_model(model, res)
        return ProfileReport(base, "baseline", res, used_width, classes, profile.params, profile.macs)

    for option, value in (("--width", width), ("--num-classes", num_classes)):
        if value is not None:
            raise ConfigError(f"{option} applies to baselines only; {target} fixes it in its arch.json")
    return _profile_arch(path, resolution)


def _profile_arch(path: Path, resolution: int | None) -> ProfileReport:
    from dataclasses import replace

    from edgenas.models import build
    from edgenas.profiler import profile_model
    from edgenas.space.evolved import load_spec

    spec = load_spec(path)
    # Count what gets deployed: the SSL projector is dropped before export.
    # Re-validating through the spec also rejects a resolution its reductions cannot divide.
    spec = replace(spec, projector=(), resolution=resolution if resolution is not None else spec.resolution)
    profile = profile_model(build(spec), spec.resolution, spec.in_channels)
    return ProfileReport(str(path), "arch", spec.resolution, None, spec.num_classes, profile.params, profile.macs)


def _print_table(report: ProfileReport) -> None:
    from rich.console import Console
    from rich.table import Table

    title = report.name if report.width is None else f"{report.name} {report.width:g}x"
    table = Table(title=title, show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("params", f"{report.params / 1e6:.3f} M ({report.params:,})")
    table.add_row("MACs", f"{report.macs / 1e6:.2f} M ({report.macs:,})")
    table.add_row("resolution", f"{report.resolution}x{report.resolution}")
    if report.width is not None:
        table.add_row("width", f"{report.width:g}")
    table.add_row("classes", str(report.num_classes))
    Console().print(table)


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def profile(target: str, resolution: int | None, width: float | None, num_classes: int | None, as_json: bool) -> None:
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
    report = profile_target(target, resolution=resolution, width=width, num_classes=num_classes)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
    else:
        _print_table(report)
