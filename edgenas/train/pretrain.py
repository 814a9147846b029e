"""The two-stage baseline of the weight-preservation ablation: SSL pre-training of the derived network.

Weight-preserving NAS keeps the weights the supernet learned. The classic
alternative (search, then train the found network again) is reproduced here:
the derived architecture is re-initialised and pre-trained with the search's
own self-supervised objective under the search's own budget (the same images,
views, batch size, optimiser, schedule and number of weight steps), so that
``--init preserved`` and ``--init pretrained`` differ only in where the
weights come from. Written to ``RUN/pretrain/`` (``weights.pt``,
``metrics.jsonl``, ``pretrain.ckpt`` to resume, ``summary.json``).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import torch

from edgenas.errors import CheckpointError, ConfigError, EdgenasError
from edgenas.rundir import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_text,
    read_jsonl,
    rewrite_jsonl,
)

__all__ = ["ensure_pretrained"]

CKPT_VERSION = 1


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
                      console=None) -> Path:
    """``RUN/pretrain/weights.pt``: trained now (or resumed) unless it is already there.

    Raises:
        ConfigError: ``run`` is not a search run directory.
        CheckpointError: an unreadable checkpoint.
    """
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from edgenas.data.datasets import load_dataset
    from edgenas.data.splits import halves
    from edgenas.data.views import BarlowTwinsViews, channel_stats
    from edgenas.models import build
    from edgenas.search.runner import cosine_lr, import_plugins, resolve_device
    from edgenas.seeds import derive_seed
    from edgenas.space.spec import ArchSpec
    from edgenas.ssl import two_view_loss

    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"--init pretrained needs a search run directory, not {run}")
    out = run / "pretrain"
    weights = out / "weights.pt"
    if (out / "summary.json").is_file() and weights.is_file():
        return weights
    console = console or Console(stderr=True)
    cfg = _search_config(run)
    if cfg.strategy != "darts":
        raise ConfigError(f"--init pretrained (the two-stage baseline) is defined for DARTS runs; {run} was grown "
                          "by evolution: compare --init preserved with --init random instead")
    import_plugins(cfg.plugins)
    spec = ArchSpec.load(run)
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(threads)
    data = load_dataset(cfg.data, cfg.data_root, train=True, resolution=cfg.resolution, size=cfg.subset,
                        level=cfg.level if cfg.data == "synthetic" else 1, seed=cfg.seed, holdout="train")
    w_idx, a_idx = (torch.as_tensor(h) for h in halves(torch.arange(len(data)), cfg.seed))
    mean, std = channel_stats(data.images)
    views = BarlowTwinsViews(resolution=cfg.resolution, mean=mean, std=std)
    criterion = two_view_loss(cfg.ssl, cfg)
    torch.manual_seed(derive_seed(cfg.seed, 99))  # another initialisation than the supernet's
    net = build(spec).to(dev, memory_format=torch.channels_last)
    params = [p for n, p in net.named_parameters() if not n.startswith("classifier.")]
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    per = cfg.batch_size * cfg.accum_steps
    steps_per_epoch = min(len(w_idx), len(a_idx)) // per  # the search's count of weight steps
    total = steps_per_epoch * cfg.epochs

    out.mkdir(exist_ok=True)
    ckpt_path = out / "pretrain.ckpt"
    epoch0, step0, global_step, elapsed0, cpu0 = 0, 0, 0, 0.0, 0.0
    if ckpt_path.is_file():
        try:
            ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError, ValueError) as exc:
            raise CheckpointError(f"{ckpt_path} is unreadable ({exc}); delete it to start over") from None
        if ckpt.get("version") != CKPT_VERSION or ckpt.get("arch_sha256") != spec.sha256():
            raise CheckpointError(f"{ckpt_path} belongs to another architecture or edgenas; delete it")
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        epoch0, step0, global_step = ckpt["epoch"], ckpt["step"], ckpt["global_step"]
        elapsed0, cpu0 = ckpt["elapsed_s"], ckpt["cpu_s"]
        metrics = out / "metrics.jsonl"
        rewrite_jsonl(metrics, [r for r in read_jsonl(metrics) if r.get("global_step", 0) <= global_step])
    wall, cpu = time.perf_counter() - elapsed0, time.process_time() - cpu0

    def save(epoch: int, step: int) -> None:
        atomic_torch_save({"version": CKPT_VERSION, "arch_sha256": spec.sha256(), "epoch": epoch, "step": step,
                           "global_step": global_step, "elapsed_s": time.perf_counter() - wall,
                           "cpu_s": time.process_time() - cpu, "model": net.state_dict(),
                           "optimizer": opt.state_dict()}, ckpt_path)

    bar = Progress(TextColumn("[bold]pretrain[/] two-stage SSL {task.description}"), BarColumn(),
                   TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=console, disable=not progress)
    with bar:
        task = bar.add_task(f"epoch {epoch0 + 1}/{cfg.epochs}", total=total, completed=global_step)
        for epoch in range(epoch0, cfg.epochs):
            net.train()
            g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 1))
            perm = w_idx[torch.randperm(len(w_idx), generator=g)]
            for step in range(step0 if epoch == epoch0 else 0, steps_per_epoch):
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(global_step, total, cfg.lr, cfg.lr_min)
                opt.zero_grad(set_to_none=True)
                value = 0.0
                for m in range(cfg.accum_steps):
                    idx = perm[(step * cfg.accum_steps + m) * cfg.batch_size:
                               (step * cfg.accum_steps + m + 1) * cfg.batch_size]
                    v1, v2 = views(data.images[idx], torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, step, m, 1)))
                    x = torch.cat([v1, v2]).to(dev, memory_format=torch.channels_last)
                    z1, z2 = net.project(x).chunk(2)
                    loss = criterion(z1, z2) / cfg.accum_steps
                    loss.backward()
                    value += float(loss.detach())
                if not math.isfinite(value):
                    raise EdgenasError(f"the SSL pre-training diverged at step {global_step}")
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                global_step += 1
                append_jsonl(out / "metrics.jsonl", {"event": "step", "epoch": epoch, "global_step": global_step,
                                                     "train_loss": value, "elapsed_s": time.perf_counter() - wall})
                bar.update(task, advance=1, description=f"epoch {epoch + 1}/{cfg.epochs}")
                if global_step % cfg.checkpoint_every == 0:
                    save(epoch, step + 1)
            save(epoch + 1, 0)
    atomic_torch_save({k: v.detach().cpu() for k, v in net.state_dict().items()}, weights)
    summary = {"arch_sha256": spec.sha256(), "steps": total, "epochs": cfg.epochs, "batch_size": cfg.batch_size,
               "images": len(w_idx), "ssl": cfg.ssl, "elapsed_s": round(time.perf_counter() - wall, 2),
               "cpu_s": round(time.process_time() - cpu, 2)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return weights
