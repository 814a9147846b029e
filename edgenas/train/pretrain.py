"""The two-stage baseline of the weight-preservation ablation: SSL pre-training of the derived network.

Weight-preserving NAS keeps the weights the supernet learned. The classic
alternative (search, then train the found network again) is reproduced here:
the derived architecture is re-initialised and pre-trained with the search's
own self-supervised objective under the search's own budget (the same images,
views, batch size, optimiser, schedule and number of weight steps) and, when
the search refined its network (``--refine-epochs``), the same refinement
after it, so that ``--init preserved`` and ``--init pretrained`` differ only in
where the weights come from. Both stages are :func:`~edgenas.train.ssl_stage.run_ssl_stage`.
Written to ``RUN/pretrain/`` (``weights.pt``, ``metrics.jsonl``,
``pretrain.ckpt`` to resume, ``summary.json``; the refinement in ``refine/``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from edgenas.errors import ConfigError
from edgenas.rundir import atomic_torch_save, atomic_write_text

__all__ = ["ensure_pretrained", "pretrained_weights"]


def pretrained_weights(run: str | Path) -> Path:
    """Where the two-stage baseline of the search run ``run`` keeps its weights."""
    return Path(run) / "pretrain" / "weights.pt"


def _search_config(run: Path):
    import yaml

    from edgenas.search.config import SearchConfig

    path = run / "config.yaml"
    if not path.is_file():
        raise ConfigError(f"{run} has no config.yaml: --init pretrained needs a search run directory")
    try:
        return SearchConfig.from_dict(yaml.safe_load(path.read_text()))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None


def ensure_pretrained(run: str | Path, device: str = "auto", threads: int = 0, progress: bool = True,
                      console=None, trust_plugins: bool = False) -> Path:
    """``RUN/pretrain/weights.pt``: trained now (or resumed) unless it is already there.

    The plugins the run's search used are imported only if the user named them (``--plugin``)
    or trusts the run (``trust_plugins``): see :func:`edgenas.plugins.require_run_plugins`.

    Raises:
        ConfigError: ``run`` is not a search run directory; a recorded plugin neither named nor trusted.
        CheckpointError: an unreadable checkpoint.
    """
    from rich.console import Console

    from edgenas.data.splits import halves
    from edgenas.data.views import BarlowTwinsViews, channel_stats
    from edgenas.models import build
    from edgenas.accelerator import resolve_device
    from edgenas.plugins import require_run_plugins
    from edgenas.seeds import derive_seed
    from edgenas.space.spec import ArchSpec
    from edgenas.ssl import two_view_loss
    from edgenas.train.ssl_stage import SSLStage, ensure_refined, run_ssl_stage

    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"--init pretrained needs a search run directory, not {run}")
    weights = pretrained_weights(run)
    out = weights.parent
    if (out / "summary.json").is_file() and weights.is_file():
        return weights
    from edgenas.outputs import job_output

    with job_output(out, "pretraining", durable=lambda: any(out.rglob("*.ckpt"))):
        console = console or Console(stderr=True)
        cfg = _search_config(run)
        if cfg.strategy != "darts":
            raise ConfigError(f"--init pretrained (the two-stage baseline) is defined for DARTS runs; {run} was grown "
                              "by evolution: compare --init preserved with --init random instead")
        require_run_plugins(cfg.plugins, run, trust_plugins)
        spec = ArchSpec.load(run)
        dev = resolve_device(device)
        if threads:
            torch.set_num_threads(threads)
        data = cfg.load_images(holdout="train")
        w_idx, a_idx = (torch.as_tensor(h) for h in halves(torch.arange(len(data)), cfg.seed))
        mean, std = channel_stats(data.images)
        torch.manual_seed(derive_seed(cfg.seed, 99))  # another initialisation than the supernet's
        net = build(spec).to(dev, memory_format=torch.channels_last)
        # the search's weight steps: one per step of the bilevel loop, which stops with the smaller half
        # (halves() gives the weight half the odd image)
        w_idx = w_idx[:len(a_idx)]
        stage = SSLStage(name="pretrain", epochs=cfg.epochs, batch_size=cfg.batch_size, accum_steps=cfg.accum_steps,
                         lr=cfg.lr, lr_min=cfg.lr_min, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                         grad_clip=cfg.grad_clip, seed=cfg.seed, rows=len(w_idx), stream=0)
        views = BarlowTwinsViews(resolution=cfg.resolution, mean=mean, std=std)
        summary = {"pretrain": run_ssl_stage(net, stage, data.images, w_idx, views, two_view_loss(cfg.ssl, cfg), out,
                                             dev, arch_sha256=spec.sha256(), progress=progress, console=console)}
        if cfg.refine_epochs:
            summary["refine"] = ensure_refined(cfg, net, out / "refine", dev, arch_sha256=spec.sha256(),
                                               progress=progress, console=console)
        atomic_torch_save({k: v.detach().cpu() for k, v in net.state_dict().items()}, weights)
        summary.update(arch_sha256=spec.sha256(), ssl=cfg.ssl,
                       steps=sum(s["steps"] for s in summary.values() if isinstance(s, dict)),
                       elapsed_s=round(sum(s["elapsed_s"] for s in summary.values() if isinstance(s, dict)), 2),
                       cpu_s=round(sum(s["cpu_s"] for s in summary.values() if isinstance(s, dict)), 2))
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        return weights
