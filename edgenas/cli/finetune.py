"""``edgenas finetune`` and ``edgenas evaluate``: few-label training and the evaluation grid."""

from __future__ import annotations

from pathlib import Path

import click

from edgenas.cli.params import CommaList, plugin_option
from edgenas.errors import ConfigError, EdgenasError
from edgenas.schedules import SCHEDULES
from edgenas.train.config import INITS, FinetuneConfig

D = FinetuneConfig(model="-")


def _list(kind, what: str) -> CommaList:
    return CommaList(kind, what, allow_empty=True)


#: what ``edgenas finetune`` trains when not told otherwise: the recipe that gives the network to deploy,
#: twice the epochs of the comparison protocol and self-training on the unlabelled images (measured at 10% of
#: CIFAR-10's labels: 79.6% for fast_cnn against 74.9%, docs/performance.md). ``evaluate`` (and
#: :class:`FinetuneConfig`) keep the comparison protocol, 40 epochs on the labels alone.
DEPLOY_EPOCHS = 80
#: the labelled share that recipe holds out to pick an epoch: none, for what it ships is the last epoch's
#: weights.pt, so every label trains (at 1% of CIFAR-10's labels: 48.3% against 46.4% with the split, one seed
#: each on different machines, docs/performance.md)
DEPLOY_SELECT_FRACTION = 0.0
#: the self-training student's colour jitter in that recipe (noisy student; from the same teachers, at 1% of
#: CIFAR-10's labels 51.4% against 48.3% without, at 10% 79.4% against 78.5%, docs/performance.md)
DEPLOY_STUDENT_JITTER = 0.4
#: the students that recipe trains in turn, each labelling the pool for the next (noisy student's iterations; at
#: 10% of CIFAR-10's labels a second student gained 0.5-1.3 points, docs/performance.md)
DEPLOY_ROUNDS = 2


def protocol_options(f=None, *, deploy: bool = False):
    """The options every fine-tuning of a protocol shares (finetune and evaluate); ``deploy``: the defaults of
    the recipe ``finetune`` trains with (:data:`DEPLOY_EPOCHS`, self-training where there are unlabelled
    images)."""
    if f is None:
        return lambda g: protocol_options(g, deploy=deploy)
    options = [
        click.option("--data", type=click.Choice(["synthetic", "cifar10", "imagefolder"]), default=D.data,
                     help="Labelled data: the synthetic set, CIFAR-10 (cifar-10-batches-py) or an ImageFolder tree."),
        click.option("--data-root", default=None, help="Folder of the data set (cifar10, imagefolder)."),
        click.option("--level", type=int, default=D.level, help="Synthetic difficulty 1-4."),
        click.option("--synthetic-size", type=int, default=D.synthetic_size, help="Synthetic training images."),
        click.option("--resolution", type=int, default=None,
                     help="Input side [default: the run's; 32 for a baseline alone]."),
        click.option("--select-fraction", type=float,
                     default=DEPLOY_SELECT_FRACTION if deploy else D.select_fraction,
                     help="Share of the labelled images held out to pick the best epoch (0: none)."),
        click.option("--eval-samples", type=int, default=None,
                     help="Measure on this many hold-out images (stratified) [default: all]."),
        click.option("--epochs", type=int, default=DEPLOY_EPOCHS if deploy else D.epochs,
                     help="Fine-tuning epochs (at least; see --min-steps)."),
        click.option("--min-steps", type=int, default=D.min_steps,
                     help="The fewest optimizer steps: few labels train more epochs than --epochs (0: no floor)."),
        click.option("--batch-size", type=int, default=D.batch_size, help="Images per step."),
        click.option("--lr", type=float, default=D.lr, help="Peak learning rate (SGD, Nesterov momentum)."),
        click.option("--lr-min", type=float, default=D.lr_min, help="Final learning rate of the schedule."),
        click.option("--warmup-epochs", type=int, default=D.warmup_epochs,
                     help="Linear warm-up epochs. [default: a quarter of the epochs]"),
        click.option("--schedule", type=click.Choice(list(SCHEDULES)), default=D.schedule,
                     help="Decay after the warm-up: linear (the fast CIFAR recipes' triangle) or cosine."),
        click.option("--ema", type=float, default=D.ema,
                     help="Decay of the moving average of the weights that is evaluated and saved (0: none)."),
        click.option("--cutout", type=float, default=D.cutout,
                     help="Side of the square cut out of each training image, a share of its side (0: none)."),
        click.option("--unlabelled/--no-unlabelled", default=None if deploy else D.unlabelled,
                     show_default=not deploy,
                     help="Self-training: the fine-tuned network labels the unlabelled training images (soft "
                          "labels), then a student trains on both; see edgenas.train.selftrain."
                          + (" [default: on, unless every image is labelled or the classifier alone is trained]"
                             if deploy else "")),
        click.option("--labelled-share", type=float, default=D.labelled_share,
                     help="--unlabelled: the labelled share of each student batch."),
        click.option("--student-jitter", type=float, default=None if deploy else D.student_jitter,
                     show_default=not deploy,
                     help="--unlabelled: colour jitter of the student's images, brightness, contrast and saturation "
                          "by factors in [1-S, 1+S] (noisy student; 0: none)."
                          + (f" [default: {DEPLOY_STUDENT_JITTER} with self-training]" if deploy else "")),
        click.option("--teacher-epochs", type=int, default=D.teacher_epochs,
                     help="--unlabelled: the teacher's epochs (at least; see --min-steps). [default: --epochs]"),
        click.option("--rounds", type=int, default=None if deploy else D.rounds, show_default=not deploy,
                     help="--unlabelled: students that train in turn, each on the pool labelled by the one before "
                          "(noisy-student iterations; each as long as the first)."
                          + (f" [default: {DEPLOY_ROUNDS} with self-training, 1 with --time-budget]" if deploy
                             else "")),
        click.option("--momentum", type=float, default=D.momentum),
        click.option("--weight-decay", type=float, default=D.weight_decay,
                     help="L2 on weights (not on biases and norm parameters)."),
        click.option("--label-smoothing", type=float, default=D.label_smoothing),
        click.option("--reset-norms/--keep-norms", default=D.reset_norms,
                     help="Preserved or pre-trained weights: rescale each conv that feeds a batch norm to its "
                          "initial norm (same function, a random start's step size)."),
        click.option("--linear-probe", is_flag=True, help="Train the classifier only, the backbone frozen."),
        click.option("--probe-epochs", type=int, default=D.probe_epochs,
                     help="Train the classifier alone for the first N of --epochs, then the whole network "
                          "(linear probing, then fine-tuning: LP-FT)."),
        click.option("--no-augment", is_flag=True, help="No random crop and flip."),
        click.option("--device", default=D.device, help="auto (CUDA when present), cpu, cuda or cuda:N."),
        click.option("--threads", type=int, default=D.threads, help="CPU threads (0: PyTorch's default)."),
        click.option("--amp", type=click.Choice(["auto", "none", "bf16"]), default=D.amp, help="bf16 autocast (CUDA, or a CPU with native bf16: AVX512-BF16, AMX, Arm BF16)."),
        click.option("--channels-last/--no-channels-last", default=D.channels_last, help="NHWC memory layout."),
        click.option("--sync-bn", is_flag=True,
                     help="Batch-norm statistics over all processes of a torchrun (as one process)."),
        click.option("--checkpoint-every", type=int, default=D.checkpoint_every,
                     help="Steps between checkpoints (and at every epoch end)."),
        click.option("--no-progress", is_flag=True, help="No progress bars."),
        click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
                     help="YAML file of these options; command-line options override it."),
        plugin_option,
        click.option("--trust-plugins", is_flag=True,
                     help="--init pretrained: import the plugins the run's search recorded (Python code from the "
                          "run directory) instead of asking for each with --plugin."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _given(ctx, name: str) -> bool:
    from click.core import ParameterSource

    return ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE


def _protocol(ctx, options: dict, budgeted: bool = False, **fixed) -> FinetuneConfig:
    """The FinetuneConfig of the command line, the ``--config`` file and ``fixed``; options the deploy recipe
    leaves unset (None) take its defaults, ``budgeted``: those of a ``--time-budget``."""
    from edgenas.cli.yamlfile import merge_options, read_yaml_options

    config_file = options.pop("config_file")
    values = merge_options(ctx, read_yaml_options(config_file) if config_file else {}, options)
    values["augment"] = not values.pop("no_augment", False) and values.get("augment", True)
    values["progress"] = not values.pop("no_progress", False)
    values.update(fixed)
    if values.get("unlabelled") is None:  # the deploy recipe: self-training wherever there are unlabelled images
        values["unlabelled"] = not (values.get("fraction") == 1 or values.get("linear_probe")
                                    or values.get("probe_epochs"))
    if values.get("student_jitter") is None:  # the deploy recipe's student noise, where there is a student
        values["student_jitter"] = DEPLOY_STUDENT_JITTER if values["unlabelled"] else 0.0
    if values.get("rounds") is None:  # the deploy recipe's students in turn, where there is a student; a budget's
        # minutes go to one (split three ways each trains too short: 5 min, fast_cnn at 10%, 70.0% with two)
        values["rounds"] = DEPLOY_ROUNDS if values["unlabelled"] and not budgeted else 1
    return FinetuneConfig.from_dict(values)


@click.command(context_settings={"show_default": True})
@click.argument("model")
@click.option("--init", type=click.Choice(INITS), default=None,
              help="Start of a searched network: the search's weights, from scratch, or a separate SSL "
                   "pre-training (two-stage). [default: preserved; random for a baseline, the only start it has, and "
                   "for a network of the stage space]")
@click.option("--fraction", type=float, default=None, help="Share of the labels (stratified, seeded). [default: 0.1]")
@click.option("--samples", type=int, default=None, help="Labelled images in total, instead of --fraction.")
@click.option("--classes", "class_subset", default=None, type=_list(int, "class indices"),
              help="Train on these classes only (comma list of indices).")
@click.option("--seed", type=int, default=D.seed, help="Seed of the labelled subset, initialisation and batches.")
@click.option("--out", default=None, help="Output directory [default: RUN/finetune/<init>-<labels>-s<seed>, "
                                          "or runs/finetune-<model>-<labels>-s<seed>]. Re-running resumes it.")
@click.option("--json", "as_json", is_flag=True, help="Print result.json.")
@click.option("--time-budget", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Minutes of wall time: as many epochs as fit, timed on this machine first (replaces --epochs "
                   "and --min-steps).")
@protocol_options(deploy=True)
@click.pass_context
def finetune(ctx, model, init, fraction, samples, class_subset, seed, out, as_json, time_budget, **options) -> None:
    """Fine-tune MODEL on a fraction of the labels; accuracy on the data set's fixed hold-out.

    MODEL is a search run directory, an arch.json or a baseline name
    (fast_cnn, resnet20, mobilenet_v2_035, mobilenet_v3_small,
    efficientnet_b0). Writes OUT/ (config.yaml, metrics.jsonl, finetune.ckpt,
    weights.pt, best.pt, arch.json for a searched network, result.json).

    Its defaults are the recipe that gives the network to deploy: 80 epochs
    (at least 2,500 steps) on every labelled image (no selection split: it
    ships the last epoch), then self-training on the unlabelled images
    (--unlabelled): two students in turn (--rounds 2). `edgenas evaluate` compares models under the cheaper
    protocol of 40 epochs on the labels alone; pass --epochs 40
    --no-unlabelled --select-fraction 0.1 here for that.
    """
    import json

    from edgenas.train import run_finetune
    from edgenas.train.candidates import default_init, is_searched

    if fraction is None and samples is None:
        fraction = D.fraction
    if init is None:
        init = default_init(model)
        if init == "random" and is_searched(model):
            click.echo("note: --init random, the default for a stage network: its search's short SSL training "
                       "fine-tuned worse than a random start (docs/evaluation.md); --init preserved starts from it",
                       err=True)
    labels = f"f{fraction:g}" if samples is None else f"n{samples}"
    if out is None:
        out = (str(Path(model) / "finetune" / f"{init}-{labels}-s{seed}") if Path(model).is_dir()
               else f"runs/finetune-{Path(model).stem if is_searched(model) else model}-{labels}-s{seed}")
    if time_budget is not None:
        given = [f"--{n.replace('_', '-')}" for n in ("epochs", "min_steps") if _given(ctx, n)]
        if given:
            raise ConfigError(f"--time-budget plans the epochs; give it or {' and '.join(given)}, not both")
    cfg = _protocol(ctx, options, budgeted=time_budget is not None, model=model, init=init, fraction=fraction,
                    samples=samples, class_subset=class_subset, seed=seed, out=out)
    from rich.console import Console

    from edgenas.distributed import is_main_process

    if time_budget is None and is_main_process():
        from edgenas.accelerator import fp32_note, resolve_device

        note = fp32_note(cfg, resolve_device(cfg.device))
        if note:
            click.echo(note, err=True)
    if time_budget is not None:
        from edgenas.train.budget import plan_time_budget

        cfg, plan = plan_time_budget(cfg, time_budget, Console(stderr=True, quiet=not is_main_process()))
        click.echo(plan, err=True)

    result = run_finetune(cfg, Console(stderr=True, quiet=not is_main_process())).result
    if not is_main_process():  # under torchrun rank 0 reports
        return
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"{result['model']} ({result['init']}), {result['labels']} ({result['n_labelled']:,} labelled images): "
               f"final {result['final_acc']:.2f}%, best {result['best_acc']:.2f}% (epoch {result['best_epoch']}) "
               f"on {result['n_eval']:,} held-out images")
    if result.get("unlabelled"):
        click.echo(f"  self-training: the teacher reached {result['teacher_acc']:.2f}% on the labels alone, then labelled "
                   f"{result['n_unlabelled']:,} unlabelled images for the student")
        if result.get("round_accs"):
            click.echo(f"  {result['rounds']} students in turn, each taught by the last: "
                       + " -> ".join(f"{a:.2f}%" for a in result["round_accs"]))
    click.echo(f"  {result['params']:,} params, {result['macs'] / 1e6:.2f}M MACs; {result['elapsed_s'] / 60:.1f} min, "
               f"{result['cpu_s'] / 60:.1f} CPU min on {result['device']}; weights in {out}")


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--models", default=",".join(("searched", "fast_cnn", "resnet20", "mobilenet_v2_035", "mobilenet_v3_small",
                                            "efficientnet_b0")),
              type=_list(str, "names"), help="'searched' (the run's network) and baselines.")
@click.option("--inits", default=None, type=_list(str, "inits"), show_default=False,
              help="Initialisations of the searched network: preserved,random,pretrained is the ablation. "
                   "[default: its own: random for a stage network, else preserved]")
@click.option("--fractions", default="0.01,0.05,0.1,0.2", type=_list(float, "numbers"),
              help="Label fractions (stratified).")
@click.option("--samples", default=None, type=_list(int, "integers"),
              help="Labelled images in total (e.g. 200,500,1000); alone, it replaces the default --fractions.")
@click.option("--seeds", default="0", type=_list(int, "integers"), help="Seeds; mean and std over them.")
@click.option("--few-shot", "few_shot", default="5w1s,5w5s", type=_list(str, "settings"),
              help="N-way K-shot settings of the few-shot episodes.")
@click.option("--no-few-shot", is_flag=True, help="Skip the few-shot episodes.")
@click.option("--novel-classes", default=None, type=_list(int, "class indices"),
              help="Few-shot classes (never trained on) [default: the upper half of the class indices].")
@click.option("--fewshot-fraction", type=float, default=0.1,
              help="Share of the base classes' labels the few-shot backbones are fine-tuned on.")
@click.option("--episodes", type=int, default=600)
@click.option("--queries", type=int, default=15, help="Query images per class and episode.")
@click.option("--fewshot-method", type=click.Choice(["prototypical", "matching"]), default="prototypical")
@protocol_options
@click.pass_context
def evaluate(ctx, run_dir, models, inits, fractions, samples, seeds, few_shot, no_few_shot, novel_classes,
             fewshot_fraction, episodes, queries, fewshot_method, **options) -> None:
    """Fine-tune the searched network and the baselines under one protocol, then few-shot episodes.

    Every (model, label budget, seed) is one fine-tuning with the same data,
    epochs, augmentation and optimiser, in RUN_DIR/eval/<protocol>/jobs/;
    results go to RUN_DIR/eval/results.jsonl and fewshot.jsonl. Running the
    same command again skips what is done and resumes what was interrupted.
    Then `edgenas report RUN_DIR` writes the tables and plots.
    """
    from rich.console import Console

    from edgenas.evaluate import EvalPlan, run_evaluation
    from edgenas.report.formats import to_markdown
    from edgenas.report.tables import accuracy_table

    from edgenas.train.candidates import default_init

    if samples and ctx.get_parameter_source("fractions") == click.core.ParameterSource.DEFAULT:
        fractions = ()
    if not inits:
        try:
            inits = (default_init(run_dir),)
        except EdgenasError:  # no readable network: the plan reports it in its own words
            inits = ("preserved",)
    plan = EvalPlan(models=models, inits=inits, fractions=fractions, samples=samples or (), seeds=seeds,
                    few_shot=() if no_few_shot else few_shot, novel_classes=novel_classes,
                    fewshot_fraction=fewshot_fraction, episodes=episodes, queries=queries,
                    fewshot_method=fewshot_method)
    from edgenas.distributed import is_main_process

    protocol = _protocol(ctx, options, model=run_dir, out=str(Path(run_dir) / "eval"))
    out = run_evaluation(run_dir, plan, protocol, Console(stderr=True, quiet=not is_main_process()))
    if not is_main_process():
        return
    table = accuracy_table(out["results"])
    if table is not None:
        click.echo(to_markdown(table))
    click.echo(f"records in {Path(run_dir) / 'eval'}; tables and plots: edgenas report {run_dir}")
