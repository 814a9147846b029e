"""``edgenas search``: options -> SearchConfig -> run_search -> a one-screen summary."""

from __future__ import annotations

import click

from edgenas.search.config import SearchConfig
from edgenas.space.ops import DEFAULT_OPS

D = SearchConfig()


def _csv(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _ints(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in _csv(value))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


@click.command(context_settings={"show_default": True})
@click.option("--target", default=None, help="Device profile to search for (see `edgenas devices list`); recorded in the run.")
@click.option("--out", default=None, help="Run directory [default: runs/search-<target or local>]. Re-running the same command resumes it.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML experiment file of search options; command-line options override it.")
@click.option("--data", type=click.Choice(["synthetic", "cifar10", "imagefolder"]), default=D.data,
              help="Data set: the embedded synthetic curriculum, CIFAR-10 (cifar-10-batches-py) or an ImageFolder tree.")
@click.option("--data-root", default=None, help="Folder of the data set (cifar10, imagefolder).")
@click.option("--subset", type=int, default=D.subset, help="Images used by the search (stratified, seeded).")
@click.option("--level", type=int, default=D.level, help="Synthetic data difficulty 1-4 (shapes, textures, compositions, occlusion).")
@click.option("--resolution", type=int, default=D.resolution, help="Input resolution (pixels) of the search and of the budget.")
@click.option("--channels", type=int, default=D.channels, help="C: channels per node in the first cells (doubles at each reduction).")
@click.option("--cells", type=int, default=D.cells, help="Number of cells (reductions at 1/3 and 2/3 of the depth).")
@click.option("--nodes", type=int, default=D.nodes, help="Intermediate nodes per cell (each keeps 2 input edges).")
@click.option("--stem-multiplier", type=int, default=D.stem_multiplier, help="Stem width = multiplier x C.")
@click.option("--ops", default=",".join(DEFAULT_OPS), help="Candidate ops (registered names, comma-separated).")
@click.option("--plugin", "plugins", multiple=True, help="Module or .py file to import first (registers custom ops); repeatable.")
@click.option("--projector", default=",".join(map(str, D.projector)), help="SSL projection head widths.")
@click.option("--ssl", default=D.ssl, help="Self-supervised objective.")
@click.option("--bt-lambda", type=float, default=D.bt_lambda, help="Barlow Twins off-diagonal weight.")
@click.option("--epochs", type=int, default=D.epochs, help="Search epochs.")
@click.option("--batch-size", type=int, default=D.batch_size, help="Images per micro-batch (two views each).")
@click.option("--accum-steps", type=int, default=D.accum_steps, help="Micro-batches accumulated per optimiser step.")
@click.option("--order", type=click.Choice(["first", "second"]), default=D.order, help="DARTS approximation: first order, or second order (unrolled).")
@click.option("--lr", type=float, default=D.lr, help="Weights learning rate (SGD, cosine to --lr-min).")
@click.option("--lr-min", type=float, default=D.lr_min, help="Final weights learning rate.")
@click.option("--arch-lr", type=float, default=D.arch_lr, help="Architecture learning rate (Adam).")
@click.option("--warmup-epochs", type=int, default=D.warmup_epochs, help="Epochs training weights only, alphas frozen.")
@click.option("--max-params", type=int, default=D.max_params, help="Parameter budget of the derived network (without the SSL head).")
@click.option("--max-macs", type=int, default=D.max_macs, help="MAC budget of the derived network at --resolution.")
@click.option("--latency-ms", type=float, default=None, help="Latency budget (ms) on --target, predicted from its latency table (edgenas lut build). [default: none; the table still reports]")
@click.option("--latency-margin", type=float, default=D.latency_margin, help="Share of --latency-ms kept free for prediction error: the predicted latency must meet latency-ms x (1 - margin).")
@click.option("--lut", default=None, help="Latency table file. [default: the --target's, from ./luts, ~/.cache/edgenas/luts or the shipped estimates]")
@click.option("--cost-weight", type=float, default=D.cost_weight, help="Weight of the budget term in the architecture loss.")
@click.option("--seed", type=int, default=D.seed, help="Seed of data, initialisation and augmentation.")
@click.option("--device", default=D.device, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=D.threads, help="CPU threads (0: PyTorch's default, one per core).")
@click.option("--checkpoint-every", type=int, default=D.checkpoint_every, help="Steps between checkpoints (and at every epoch end).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def search(ctx: click.Context, config_file, as_json, no_progress, **options) -> None:
    """Self-supervised, budget-constrained architecture search (DARTS + Barlow Twins).

    Trains a supernet of light ops on unlabelled images, derives the discrete
    network within the parameter and MAC budgets, and writes a run directory
    (arch.json, weights.pt with the preserved search weights, config.yaml,
    metrics.jsonl, alpha.jsonl, report.md, plots/). Interrupted runs resume
    when the same command is run again.
    """
    import json

    from rich.console import Console

    from edgenas.cli.yamlfile import merge_options, read_yaml_options
    from edgenas.search.runner import run_search

    from_file = SearchConfig.from_dict(read_yaml_options(config_file)).to_dict() if config_file else {}
    values = merge_options(ctx, from_file, options)
    values["ops"] = _csv(values["ops"]) if isinstance(values["ops"], str) else tuple(values["ops"])
    values["projector"] = _ints(values["projector"]) if isinstance(values["projector"], str) else tuple(values["projector"])
    values["plugins"] = tuple(values.get("plugins") or ())
    if not values.get("out"):
        values["out"] = f"runs/search-{values.get('target') or 'local'}"
    values["progress"] = not no_progress
    values.pop("extra", None)
    cfg = SearchConfig.from_dict(values)

    console = Console(stderr=True)
    result = run_search(cfg, console=console)
    if as_json:
        click.echo(json.dumps(result.summary, indent=2))
        return
    s = result.summary
    state = "resumed and finished" if result.resumed else "finished"
    click.echo(f"search {state}: {result.run_dir}")
    if s.get("predicted_latency_ms") is not None:
        budget = f" / {s['latency_budget_ms']:g}" if s.get("latency_budget_ms") else ""
        measured = f", measured {s['measured_latency_ms']:.4f} ms" if s.get("measured_latency_ms") else ""
        click.echo(f"  latency predicted {s['predicted_latency_ms']:.4f}{budget} ms{measured} "
                   f"({s['latency_table']})")
    click.echo(f"  params {s['params']:,} / {s['max_params']:,}   MACs {s['macs'] / 1e6:.2f}M / {s['max_macs'] / 1e6:.1f}M"
               f" at {cfg.resolution}x{cfg.resolution}")
    click.echo(f"  {s['elapsed_s']:.1f} s on {s['device']}, {s['images_per_s_median'] or 0:.0f} images/s;"
               f" target {s['target'] or '-'}")
    click.echo(f"  arch.json, weights.pt, report.md in {result.run_dir}")
