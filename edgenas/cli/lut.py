"""``edgenas lut build|predict|validate`` and ``edgenas space sample``: latency tables of the search space."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from edgenas.cli.bench import transport_options
from edgenas.errors import ConfigError
from edgenas.space.evolved import EVOLVED_SPACE
from edgenas.space.spec import SPACE_NAME


def _ints(ctx, param, value):
    try:
        items = tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None
    if not items or min(items) < 1:
        raise click.BadParameter(f"{value!r}: give integers >= 1")
    return items


def _ops(ctx, param, value):
    return tuple(v.strip() for v in str(value).split(",") if v.strip())


def _space(ctx, param, value):
    if value not in (SPACE_NAME, EVOLVED_SPACE):
        raise click.BadParameter(f"unknown space {value!r} (known: {SPACE_NAME}, {EVOLVED_SPACE})")
    return value


def evolve_options(f):
    """The limits of the evolved space's table (the evolve search's own options)."""
    from edgenas.search.config import SearchConfig

    D = SearchConfig()
    options = [
        click.option("--seed-channels", type=click.IntRange(min=1), default=D.seed_channels, show_default=True,
                     help="evolved-cnn: the seed network's width."),
        click.option("--seed-blocks", type=click.IntRange(min=1), default=D.seed_blocks, show_default=True),
        click.option("--expansion", type=click.IntRange(min=1), default=D.expansion, show_default=True),
        click.option("--max-blocks", type=click.IntRange(min=1), default=D.max_blocks, show_default=True),
        click.option("--max-channels", type=click.IntRange(min=1), default=D.max_channels, show_default=True),
        click.option("--widen-factor", type=float, default=D.widen_factor, show_default=True),
        click.option("--depth", type=click.IntRange(min=0), default=2, show_default=True,
                     help="evolved-cnn: measure every network this many mutations from the seed (the search "
                          "measures what it reaches beyond, when the device is reachable)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def layout_options(f):
    from edgenas.space.ops import DEFAULT_OPS

    options = [
        click.option("--channels", default="8", show_default=True, callback=_ints,
                     help="Channel counts C of the layouts (comma list; the search's --channels)."),
        click.option("--cells", default="3", show_default=True, callback=_ints, help="Cell counts (comma list)."),
        click.option("--nodes", type=click.IntRange(min=1), default=3, show_default=True),
        click.option("--resolution", default="32", show_default=True, callback=_ints,
                     help="Input sides (comma list)."),
        click.option("--ops", default=",".join(DEFAULT_OPS), show_default=True, callback=_ops,
                     help="Candidate ops of the space."),
        click.option("--space", "space_name", default=SPACE_NAME, show_default=True, callback=_space,
                     help="Search space: the DARTS cell space of light ops, or the evolved chain of blocks."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _layouts(channels, cells, nodes, resolution):
    from edgenas.lut import Layout

    layouts = []
    for r in resolution:
        for c in channels:
            for n in cells:
                layout = Layout(channels=c, cells=n, nodes=nodes, resolution=r)
                try:
                    layout.template(*_dummy(nodes))
                except Exception as exc:  # noqa: BLE001 - the spec's own message
                    raise ConfigError(f"layout C={c} cells={n} resolution={r}: {exc}") from None
                layouts.append(layout)
    return layouts


def _dummy(nodes):
    from edgenas.space.spec import CellGenotype, Edge

    g = CellGenotype(tuple((Edge("identity", 0), Edge("identity", 1)) for _ in range(nodes)))
    return g, g


def _progress():
    if not sys.stderr.isatty():
        return (lambda what, done, total: None), (lambda: None)
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    bar = Progress(TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True)
    bar.start()
    task = bar.add_task("", total=None)
    return (lambda what, done, total: bar.update(task, description=what, completed=done, total=total)), bar.stop


@click.group("lut")
def lut() -> None:
    """Per-device latency tables of the search space and the latency predictor."""


@lut.command("build")
@transport_options
@layout_options
@click.option("--runtime", type=click.Choice(["ort", "litert", "openvino"]), default=None,
              help="[default: the device profile's]")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="[default: the device profile's]")
@click.option("--calibration-networks", type=click.IntRange(min=2), default=12, show_default=True,
              help="Whole random networks measured to calibrate the predictor.")
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=30, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), default="luts", show_default=True)
@evolve_options
def build(device, host, key, known_hosts, python, channels, cells, nodes, resolution, ops, space_name, runtime,
          precision, threads, calibration_networks, runs, warmup, timeout, seed, out, seed_channels, seed_blocks,
          expansion, max_blocks, max_channels, widen_factor, depth) -> None:
    """Measure every block of the space on a device: OUT/<device>[-evolved-cnn]-<runtime>-<precision>.json.

    darts-light: every op at every position and shape it can take (channels,
    stride, input size, cell type), the stem and head. evolved-cnn: the blocks of
    every network within --depth mutations of the seed (an evolve search adds
    what it reaches beyond). Each block and an empty model per input shape are
    exported as small models and measured on the device; then a few whole
    random networks calibrate the sum. Interrupted builds resume.
    """
    from edgenas.cli.bench import open_device
    from edgenas.lut import build_table

    profile, transport = open_device(device, host, key, known_hosts, python)
    update, stop = _progress()
    try:
        probe = transport.probe()
        common = dict(runtime=runtime or profile.runtime, precision=precision, threads=threads or profile.threads,
                      out=out, calibration_networks=calibration_networks, warmup=warmup, runs=runs, timeout=timeout,
                      progress=update)
        if space_name == EVOLVED_SPACE:
            from edgenas.lut_evolved import build_evolved_table
            from edgenas.search.config import SearchConfig

            cfg = SearchConfig(strategy="evolve", resolution=resolution[0], seed_channels=seed_channels,
                               seed_blocks=seed_blocks, expansion=expansion, max_blocks=max_blocks,
                               max_channels=max_channels, widen_factor=widen_factor, seed=seed)
            path = build_evolved_table(cfg, 10, transport.run_job, profile, probe.get("fingerprint", {}),
                                       depth=depth, **common)
        else:
            layouts = _layouts(channels, cells, nodes, resolution)
            path = build_table(layouts, ops, transport.run_job, profile, probe.get("fingerprint", {}), seed=seed,
                               **common)
    finally:
        stop()
        transport.close()
    from bench.lut import LatencyTable

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
    from bench.lut import LatencyTable
    from edgenas.lut import arch_keys
    from edgenas.space.evolved import load_spec

    table = LatencyTable.load(lut_path)
    rows = []
    for arch in archs:
        spec = load_spec(arch)
        table.check(space=spec.space, space_version=spec.space_version)
        rows.append({"arch": arch, "predicted_ms": table.predict(arch_keys(spec)), "table": table.label,
                     "estimated": table.estimated})
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
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=30, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Scatter plot PNG. [default: next to the table]")
@click.option("--space", "space_name", default=SPACE_NAME, show_default=True, callback=_space,
              help="Which table of the device: the cell space's, or the evolved space's.")
@click.option("--json", "as_json", is_flag=True)
def validate(device, host, key, known_hosts, python, lut_path, runtime, precision, samples, seed, runs, warmup,
             timeout, plot, space_name, as_json) -> None:
    """Random held-out architectures: predicted vs measured latency (MAPE, within 10%, Spearman)."""
    from bench.lut import LatencyTable, table_name
    from edgenas.cli.bench import open_device
    from edgenas.lut import Layout, sample_specs, validate_table

    profile, transport = open_device(device, host, key, known_hosts, python)
    from edgenas.lut import find_table

    runtime = runtime or profile.runtime
    name = profile.name if space_name == SPACE_NAME else f"{profile.name}-{EVOLVED_SPACE}"
    path = Path(lut_path) if lut_path else find_table(name, runtime, precision)
    if path is None:
        raise ConfigError(f"no latency table {table_name(name, runtime, precision)} found; "
                          f"edgenas lut build --device {profile.name} --space {space_name} measures one")
    table = LatencyTable.load(path)
    table.check(device=profile.name, runtime=runtime, precision=precision)
    if table.data.get("space") == EVOLVED_SPACE:
        specs = _evolved_held_out(table, samples, seed, transport, Path(path), profile)
    else:
        layouts = [Layout(**d) for d in table.data.get("layouts") or [{}]]
        specs = sample_specs(samples, seed, layouts, table.data.get("ops") or ())
    update, stop = _progress()
    done = [0]

    def step():
        done[0] += 1
        update("held-out networks", done[0], samples)
    try:
        result = validate_table(table, specs, transport.run_job, warmup, runs, timeout, step)
    finally:
        stop()
        transport.close()
    result.update(table=str(path), estimated=table.estimated, device=profile.name, runtime=table.runtime)
    plot = Path(plot) if plot else path.with_suffix(".validate.png")
    _scatter(result, plot, table.label)
    result["plot"] = str(plot)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"{table.label}: {result['n']} held-out networks, MAPE {result['mape_pct']:.1f}%, "
                   f"{100 * result['within_10pct']:.0f}% within +/-10%, Spearman {result['spearman']:.3f}; "
                   f"plot {plot}")


def _evolved_held_out(table, samples: int, seed: int, transport, path: Path, profile) -> list:
    """Random grown networks of the table's limits; blocks the table lacks are measured into it first."""
    from edgenas.evolve.proposals import seed_spec
    from edgenas.lut import measure_blocks
    from edgenas.lut_evolved import GrowingTable, sample_evolved
    from edgenas.search.config import SearchConfig

    cfg = SearchConfig(strategy="evolve", **table.data.get("evolve", {}))
    import dataclasses

    specs = sample_evolved(samples, seed, dataclasses.replace(seed_spec(cfg, 10), projector=()), cfg)
    growing = GrowingTable(table, path, lambda keys: measure_blocks(keys, {}, transport.run_job, table.runtime,
                                                                    table.precision, int(table.threads), 30, 200,
                                                                    600), profile)
    for spec in specs:
        growing.predict(spec)
    return specs


def _scatter(result: dict, path: Path, label: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    m, p = result["measured_ms"], result["predicted_ms"]
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(m, p, s=12, alpha=0.7)
    lo, hi = min(m + p), max(m + p)
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="gray", alpha=0.2, label="+/-10%")
    ax.set(xlabel="measured p50 (ms)", ylabel="predicted (ms)",
           title=f"{label}\nMAPE {result['mape_pct']:.1f}%, {100 * result['within_10pct']:.0f}% within 10%, "
                 f"Spearman {result['spearman']:.3f}")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


@click.group("space")
def space() -> None:
    """The search space: random architectures."""


@space.command("sample")
@click.option("--n", "n", type=click.IntRange(min=1), required=True, help="How many architectures.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", type=click.Path(file_okay=False), required=True)
@layout_options
def sample(n, seed, out, channels, cells, nodes, resolution, ops, space_name) -> None:
    """Write N random arch.json files of the space (also the random-search baseline)."""
    from bench.files import atomic_write_text
    from edgenas.lut import sample_specs

    specs = sample_specs(n, seed, _layouts(channels, cells, nodes, resolution), ops)
    out = Path(out)
    width = len(str(n - 1))
    for i, spec in enumerate(specs):
        atomic_write_text(out / f"arch-{i:0{width}d}.json", json.dumps(spec.to_dict(), indent=1))
    click.echo(f"{n} architectures in {out}")
