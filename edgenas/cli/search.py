"""``edgenas search``: options -> SearchConfig -> run_search -> a one-screen summary."""

from __future__ import annotations

import click

from edgenas.cli.params import CommaList, key_values
from edgenas.search.config import STRATEGY_SPACES, SearchConfig
from edgenas.space.ops import DEFAULT_OPS

D = SearchConfig()


@click.command(context_settings={"show_default": True})
@click.option("--target", default=None, help="Device profile to search for (see `edgenas devices list`); recorded in the run.")
@click.option("--out", default=None, help="Run directory [default: runs/search-<target or local>]. Re-running the same command resumes it.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="YAML experiment file of search options; command-line options override it.")
@click.option("--data", type=click.Choice(["synthetic", "cifar10", "imagefolder"]), default=D.data,
              help="Data set: the embedded synthetic curriculum, CIFAR-10 (cifar-10-batches-py) or an ImageFolder tree.")
@click.option("--data-root", default=None, help="Folder of the data set (cifar10, imagefolder).")
@click.option("--subset", type=int, default=D.subset,
              help="Images used by the search (stratified, seeded) [default: 5,000 for the proxy strategy's race "
                   "on real images, else 1,024; all when the data holds fewer].")
@click.option("--level", type=int, default=D.level, help="Synthetic data difficulty 1-4 (shapes, textures, compositions, occlusion).")
@click.option("--resolution", type=int, default=D.resolution, help="Input resolution (pixels) of the search and of the budget.")
@click.option("--channels", type=int, default=D.channels, help="C: channels per node in the first cells (doubles at each reduction); 0: the widest whose expected network fits the budgets.")
@click.option("--cells", type=int, default=D.cells, help="Number of cells (reductions at 1/3 and 2/3 of the depth); 0: chosen with --channels from the budgets.")
@click.option("--nodes", type=int, default=D.nodes, help="Intermediate nodes per cell (each keeps 2 input edges).")
@click.option("--stem-multiplier", type=int, default=D.stem_multiplier, help="Stem width = multiplier x C.")
@click.option("--ops", default=",".join(DEFAULT_OPS), help="Candidate ops (registered names, comma-separated).")
@click.option("--plugin", "plugins", multiple=True, help="Python module or .py file to import first, e.g. one that registers custom ops; a plugin is code that runs with your rights (recorded in the run, never imported from it by another command). Repeatable.")
@click.option("--projector", default=",".join(map(str, D.projector)), help="SSL projection head widths.")
@click.option("--strategy", type=click.Choice(["darts", "evolve", "proxy"]), default=D.strategy,
              help="proxy (default): rank random networks that fill the budgets with label-free zero-cost "
                   "proxies, train the best; darts: prune a supernet of cells; evolve: grow a seed network "
                   "(GROW/WIDEN, sparse routing).")
@click.option("--space", type=click.Choice(["auto", *sorted({s for v in STRATEGY_SPACES.values() for s in v})]),
              default=D.space,
              help="Search space: darts-light (DARTS cells; darts, proxy), evolved-cnn (evolve), stages-cnn (dense "
                   "conv stages with residual pairs; proxy). auto: the strategy's own (proxy: stages-cnn).")
@click.option("--proxies", default=",".join(D.proxies), help="proxy: the proxies whose average rank decides (naswot, synflow, zen).")
@click.option("--proxy-samples", type=int, default=D.proxy_samples, help="proxy: random architectures scored.")
@click.option("--proxy-batch", type=int, default=D.proxy_batch, help="proxy: unlabelled images NASWOT scores each on.")
@click.option("--race", type=int, default=D.race,
              help="proxy (stages-cnn): train N candidates briefly on rotation prediction (label-free) and keep the "
                   "one that learns it best; 0: the zero-cost ranking decides [default: 8 on real images when the "
                   "search has 1,128 or more, 24 when the candidates are small (median 40M MACs or less), else 0].")
@click.option("--race-steps", type=int, default=D.race_steps,
              help="proxy: rotation steps per raced candidate [default: 200; 1,000 for small candidates].")
@click.option("--race-by", type=click.Choice(["rotation", "rotation+naswot"]), default=D.race_by,
              help="proxy: keep the best rotation learner, or the best rank average of rotation and NASWOT "
                   "[default: rotation+naswot for small candidates, else rotation].")
@click.option("--race-from", type=click.Choice(["top", "sample"]), default=D.race_from,
              help="proxy: race the first sampled candidates (sample: only they are scored) or the zero-cost "
                   "ranking's best (top).")
@click.option("--ssl", default=D.ssl,
              help="Self-supervised objective: barlow, ntxent, dino (evolve), or several joined by '+', "
                   "e.g. dino+rotation.")
@click.option("--ssl-weights", default="", callback=key_values("NAME=NUMBER", float, as_dict=True),
              help="Weights of the combined objectives, e.g. rotation=0.5 (each 1 by default).")
@click.option("--ntxent-temperature", type=float, default=D.ntxent_temperature, help="NT-Xent temperature.")
@click.option("--dino-out-dim", type=int, default=D.dino_out_dim, help="DINO prototypes.")
@click.option("--dino-teacher-temp", type=float, default=D.dino_teacher_temp)
@click.option("--dino-student-temp", type=float, default=D.dino_student_temp)
@click.option("--dino-momentum", type=float, default=D.dino_momentum, help="Teacher EMA momentum (start).")
@click.option("--dino-momentum-schedule", type=click.Choice(["cosine", "constant"]), default=D.dino_momentum_schedule,
              help="constant: the teacher momentum stays; cosine: it rises to 1 over the run (DINO's schedule).")
@click.option("--local-crops", type=int, default=D.local_crops, help="DINO local crops per image (with 2 global).")
@click.option("--evolution/--no-evolution", default=D.evolution,
              help="evolve: mutate the network (off: train the seed network only, an ablation).")
@click.option("--seed-channels", type=int, default=D.seed_channels, help="evolve: width of the seed network.")
@click.option("--seed-blocks", type=int, default=D.seed_blocks, help="evolve: blocks of the seed network.")
@click.option("--expansion", type=int, default=D.expansion, help="evolve: hidden = expansion x width of new blocks.")
@click.option("--max-blocks", type=int, default=D.max_blocks, help="evolve: at most this many blocks.")
@click.option("--max-channels", type=int, default=D.max_channels, help="evolve: at most this many channels per tensor.")
@click.option("--widen-factor", type=float, default=D.widen_factor, help="evolve: WIDEN multiplies a width by this.")
@click.option("--importance", type=click.Choice(["taylor", "gradient"]), default=D.importance,
              help="evolve: gradient sensitivity (first-order Taylor or gradient magnitude).")
@click.option("--plateau-window", type=int, default=D.plateau_window,
              help="evolve: steps per window of the plateau test (last window vs the one before).")
@click.option("--plateau-threshold", type=float, default=D.plateau_threshold,
              help="evolve: relative improvement below which the loss has plateaued.")
@click.option("--min-steps-between-mutations", type=int, default=D.min_steps_between_mutations)
@click.option("--trial-steps", type=int, default=D.trial_steps, help="evolve: training steps of each candidate's trial.")
@click.option("--trial-candidates", type=int, default=D.trial_candidates, help="evolve: candidates per round.")
@click.option("--fitness-cost-weight", type=float, default=D.fitness_cost_weight,
              help="evolve: weight of the cost (max of params, MACs, latency over budget) in the fitness.")
@click.option("--sparse-routing/--no-sparse-routing", default=D.sparse_routing,
              help="evolve: importance masks steer mutations; the pruned path is removed before the last epoch.")
@click.option("--sparsity", type=float, default=D.sparsity, help="evolve: L1 on the hidden layers' BN scales.")
@click.option("--importance-mass", type=float, default=D.importance_mass,
              help="evolve: share of a layer's importance its important path carries.")
@click.option("--curriculum/--no-curriculum", default=D.curriculum,
              help="evolve: move through the four synthetic levels (mixed with --data when it is real).")
@click.option("--curriculum-mode", type=click.Choice(["epochs", "plateau"]), default=D.curriculum_mode)
@click.option("--bt-lambda", type=float, default=D.bt_lambda, help="Barlow Twins off-diagonal weight.")
@click.option("--epochs", type=int, default=D.epochs, help="Search epochs.")
@click.option("--batch-size", type=int, default=D.batch_size, help="Images per micro-batch (two views each).")
@click.option("--accum-steps", type=int, default=D.accum_steps, help="Micro-batches accumulated per optimiser step.")
@click.option("--order", type=click.Choice(["first", "second"]), default=D.order, help="DARTS approximation: first order, or second order (unrolled).")
@click.option("--supernet", type=click.Choice(["sampled", "full"]), default=D.supernet,
              help="DARTS: sampled runs one op per edge per step (Gumbel straight-through, GDAS), so a step costs "
                   "about one network and the search runs at deployment size; full runs every op of every edge.")
@click.option("--tau-max", type=float, default=D.tau_max, help="sampled: Gumbel temperature at the start.")
@click.option("--tau-min", type=float, default=D.tau_min, help="sampled: Gumbel temperature at the end (linear).")
@click.option("--arch-every", type=int, default=D.arch_every,
              help="An architecture step every N weight steps (each costs a forward and backward). 0: every step for the full supernet, every other step for the sampled one.")
@click.option("--lr", type=float, default=D.lr, help="Weights learning rate (SGD, cosine to --lr-min).")
@click.option("--lr-min", type=float, default=D.lr_min, help="Final weights learning rate.")
@click.option("--arch-lr", type=float, default=D.arch_lr, help="Architecture learning rate (Adam).")
@click.option("--warmup-epochs", type=int, default=D.warmup_epochs, help="Epochs training weights only, alphas frozen.")
@click.option("--refine-epochs", type=int, default=D.refine_epochs,
              help="DARTS: after the derivation, continue the SSL objective on the derived network, from its preserved "
                   "weights, for this many epochs over every unlabelled training image (also on a finished run: same "
                   "command, same --out). 0: none.")
@click.option("--refine-batch-size", type=int, default=D.refine_batch_size, help="Images per refinement step (two views each).")
@click.option("--refine-lr", type=float, default=D.refine_lr, help="Refinement learning rate (SGD, 10% warm-up, cosine to 0).")
@click.option("--refine-subset", type=int, default=None, help="Refine on a stratified subset of this many images. [default: all outside the hold-out]")
@click.option("--max-params", type=int, default=D.max_params, help="Parameter budget of the derived network (without the SSL head).")
@click.option("--max-macs", type=int, default=D.max_macs, help="MAC budget of the derived network at --resolution.")
@click.option("--latency-ms", type=float, default=None, help="Latency budget (ms) on --target, predicted from its latency table (edgenas lut build). [default: none; the table still reports]")
@click.option("--latency-margin", type=float, default=D.latency_margin, help="Share of --latency-ms kept free for prediction error: the predicted latency must meet latency-ms x (1 - margin).")
@click.option("--lut", default=None, help="Latency table file. [default: the --target's, from ./luts, ~/.cache/edgenas/luts or the shipped estimates]")
@click.option("--latency-also", multiple=True, metavar="FILE=MS",
              help="proxy (stages-cnn): another latency table of the target (another runtime or precision) and "
                   "its budget in ms; the network must meet it too (repeatable), e.g. the ONNX INT8 table beside "
                   "a LiteRT --lut.")
@click.option("--cost-weight", type=float, default=D.cost_weight, help="Weight of the budget term in the architecture loss.")
@click.option("--seed", type=int, default=D.seed, help="Seed of data, initialisation and augmentation.")
@click.option("--device", default=D.device, help="auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--threads", type=int, default=D.threads, help="CPU threads (0: PyTorch's default, one per core).")
@click.option("--amp", type=click.Choice(["none", "bf16"]), default=D.amp, help="bf16 autocast (CUDA, or a CPU with native bf16: AVX512-BF16, AMX, Arm BF16).")
@click.option("--channels-last/--no-channels-last", default=D.channels_last,
              help="NHWC memory layout (faster for depthwise and 1x1 convs on oneDNN CPUs and with cuDNN).")
@click.option("--recompute/--no-recompute", default=None,
              help="DARTS: run each supernet edge's op again in the backward pass instead of keeping its "
                   "activations (the same step; at deployment size 41-46% less peak memory in about the same "
                   "time, measured on one CPU). [default: on for --supernet sampled, off for full]")
@click.option("--sync-bn", is_flag=True,
              help="Batch-norm statistics over the whole batch of all processes of a torchrun (as one process).")
@click.option("--checkpoint-every", type=int, default=D.checkpoint_every, help="Steps between checkpoints (and at every epoch end).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_context
def search(ctx: click.Context, config_file, as_json, no_progress, **options) -> None:
    """Self-supervised, budget-constrained architecture search (proxy ranking, DARTS, or evolution).

    proxy (the default) scores hundreds of random networks of dense conv
    stages, each scaled to fill the parameter and MAC budgets, with
    label-free zero-cost proxies and trains the best with the SSL objective;
    darts trains a supernet of light ops on unlabelled images and derives the
    discrete network within the parameter, MAC (and latency) budgets; evolve
    grows a seed network by function-preserving GROW and WIDEN mutations
    chosen by gradient sensitivity (DINO, NT-Xent, Barlow Twins, rotation,
    curriculum). Both write a run directory (arch.json, weights.pt with the
    preserved search weights, config.yaml, metrics.jsonl, proxy.jsonl,
    alpha.jsonl or evolution.jsonl, report.md, plots/). Interrupted runs resume when the same
    command is run again.
    """
    import json

    from rich.console import Console

    from edgenas.cli.yamlfile import merge_options, read_yaml_options
    from edgenas.search.runner import run_search

    from_file = SearchConfig.from_dict(read_yaml_options(config_file)).to_dict() if config_file else {}
    values = merge_options(ctx, from_file, options)
    values["ops"] = CommaList(str, "op names").convert(values["ops"], None, ctx)
    values["proxies"] = CommaList(str, "proxy names").convert(values["proxies"], None, ctx)
    values["projector"] = CommaList(int, "integers").convert(values["projector"], None, ctx)
    values["plugins"] = tuple(values.get("plugins") or ())
    values["latency_also"] = tuple(values.get("latency_also") or ())
    if not values.get("out"):
        values["out"] = f"runs/search-{values.get('target') or 'local'}"
    values["progress"] = not no_progress
    cfg = SearchConfig.from_dict(values)

    from edgenas.distributed import is_main_process

    console = Console(stderr=True, quiet=not is_main_process())
    result = run_search(cfg, console=console)
    if not is_main_process():  # under torchrun rank 0 reports
        return
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
        for also in s.get("latency_also", []):
            measured = f", measured {also['measured_latency_ms']:.4f} ms" if also.get("measured_latency_ms") else ""
            click.echo(f"  latency predicted {also['predicted_latency_ms']:.4f} / {also['latency_budget_ms']:g} ms"
                       f"{measured} ({also['latency_table']})")
    click.echo(f"  params {s['params']:,} / {s['max_params']:,}   MACs {s['macs'] / 1e6:.2f}M / {s['max_macs'] / 1e6:.1f}M"
               f" at {cfg.resolution}x{cfg.resolution}")
    speed = f", {s['images_per_s_median']:.0f} images/s" if s.get("images_per_s_median") else ""
    click.echo(f"  {s['elapsed_s']:.1f} s on {s['device']}{speed}; target {s['target'] or '-'}")
    if s.get("budget_share"):
        click.echo("  budget used: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["budget_share"].items())
                   + (f" (widened from C={s['widened_from_channels']} to C={s['channels']})"
                      if s.get("widened_from_channels") else ""))
    if s.get("strategy") == "evolve":
        click.echo(f"  {s['blocks']} blocks; {s['mutations_accepted']} of {s['mutation_rounds']} mutation rounds kept"
                   " a mutation (evolution.jsonl)")
    if s.get("refine"):
        r = s["refine"]
        click.echo(f"  refined {r['epochs']} epochs on {r['rows']:,} images ({r['steps']} steps, {r['elapsed_s']:.0f} s): "
                   f"SSL loss {r['first_loss']:.1f} -> {r['final_loss']:.1f}; the search's weights in weights_search.pt")
    click.echo(f"  arch.json, weights.pt, report.md in {result.run_dir}")
