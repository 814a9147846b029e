"""``edgenas ablate``: the evolution method with each component switched off, same budget, one table."""

from __future__ import annotations

import click

from edgenas.cli.params import CommaList


@click.command(context_settings={"show_default": True})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), required=True,
              help="YAML experiment file of an evolve search (strategy: evolve).")
@click.option("--out", default="runs/ablate", help="One search run directory per variant, and the table.")
@click.option("--components", default="evolution,sparse_routing,curriculum,rotation",
              type=CommaList(str, "components", allow_empty=True),
              help="Components to switch off one at a time (those the config uses).")
@click.option("--eval-data", type=click.Choice(["synthetic", "cifar10", "imagefolder"]), default=None,
              help="Labelled data of the evaluation [default: the config's].")
@click.option("--eval-root", default=None, help="Its folder (cifar10, imagefolder).")
@click.option("--fraction", type=float, default=0.1, help="Labelled share of the pool (kNN memory, fine-tuning).")
@click.option("--finetune-epochs", type=int, default=0, help="Also fine-tune each network this long (0: kNN only).")
@click.option("--seed", type=int, default=0, help="Seed of the evaluation's labelled subset.")
def ablate(config_file, out, components, eval_data, eval_root, fraction, finetune_epochs, seed) -> None:
    """Run the method of --config with evolution, sparse routing, curriculum and rotation each switched off
    in turn (same epochs and data), judge every network the same way, and write OUT/ablation.md."""
    from pathlib import Path

    from edgenas.cli.yamlfile import read_yaml_options
    from edgenas.errors import ConfigError
    from edgenas.evolve.ablate import run_ablation
    from edgenas.search.config import SearchConfig

    if not 0 < fraction <= 1:
        raise ConfigError(f"--fraction must lie in (0, 1], got {fraction}")
    if finetune_epochs < 0:
        raise ConfigError(f"--finetune-epochs must be >= 0, got {finetune_epochs}")
    cfg = SearchConfig.from_dict(read_yaml_options(config_file))
    run_ablation(cfg, out, components, eval_data, eval_root, fraction, finetune_epochs, seed)
    click.echo((Path(out) / "ablation.md").read_text())
