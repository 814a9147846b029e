"""Self-supervised training of a derived network: one resumable loop for the refinement and the two-stage baseline.

A DARTS search trains a supernet whose every edge mixes all candidate ops, on a
subset of the images split in two for the bilevel optimisation; the derived
network inherits the weights of the ops it kept (weight preservation). That
budget is set by the supernet's cost, not by what the small derived network
could learn: its features after a few hundred supernet steps barely beat a
random start. The *refinement* continues the search's own objective on the
derived network alone, which is cheaper per image than the supernet by the
number of candidate ops, over every unlabelled training image. It starts from
the inherited weights, so the search's weights are still what fine-tuning
starts from, refined; ``edgenas search --refine-epochs N`` runs it after the
derivation (or on a finished run).

:func:`run_ssl_stage` is that loop for any :class:`SSLStage`: two views per
image (the search's Barlow Twins augmentations), the two-view loss on the
projector, SGD with a linear warm-up and a cosine schedule, checkpoints to
resume, a progress bar and a ``metrics.jsonl``. The two-stage baseline
(:mod:`edgenas.train.pretrain`) runs the same stages from a fresh
initialisation: the search's budget, then the same refinement.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.files import read_json
from edgenas.errors import CheckpointError, ConfigError, EdgenasError
from edgenas.rundir import (
    append_jsonl,
    atomic_torch_save,
    atomic_write_text,
    load_checkpoint,
    read_jsonl,
    rewrite_jsonl,
)
from edgenas.progress import ProgressBar
from edgenas.schedules import cosine_lr

__all__ = ["SSLStage", "ensure_refined", "refine_pool", "refine_stage", "run_ssl_stage"]

CKPT_VERSION = 1

#: the refinement's fixed stream of seeds, apart from the search's (epoch, step) streams
REFINE_STREAM = 7


@dataclass(frozen=True)
class SSLStage:
    """What one SSL stage trains on and how (its identity: a resume must match it).

    Attributes:
        name: ``pretrain`` or ``refine``: the progress bar's and the records' label.
        epochs, batch_size, accum_steps: passes over ``rows``; images per step = batch x accum.
        lr, lr_min, warmup_steps, momentum, weight_decay, grad_clip: SGD, linear warm-up then cosine.
        seed: the run's seed; ``stream`` keeps this stage's permutations and views apart from others
            (0: the search's own streams, which the two-stage baseline's first stage reuses).
        rows: how many images the stage trains on (recorded; the caller passes the rows themselves).
    """

    name: str
    epochs: int
    batch_size: int
    lr: float
    lr_min: float
    momentum: float
    weight_decay: float
    grad_clip: float
    seed: int
    rows: int
    accum_steps: int = 1
    warmup_steps: int = 0
    stream: int = 1

    @property
    def steps_per_epoch(self) -> int:
        return self.rows // (self.batch_size * self.accum_steps)

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.epochs


def refine_stage(cfg, rows: int) -> SSLStage:
    """The refinement a search config asks for (``--refine-*``), over ``rows`` images."""
    stage = SSLStage(name="refine", epochs=cfg.refine_epochs, batch_size=cfg.refine_batch_size, lr=cfg.refine_lr,
                     lr_min=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay, grad_clip=cfg.grad_clip,
                     seed=cfg.seed, rows=rows, stream=REFINE_STREAM)
    if stage.steps_per_epoch < 1:
        raise ConfigError(f"--refine-batch-size {cfg.refine_batch_size} is more than the {rows} images to refine on")
    # a tenth of the steps to warm up: the inherited weights are not wrecked by the first large steps
    return dataclasses.replace(stage, warmup_steps=max(1, stage.total_steps // 10))


def _lr(stage: SSLStage, step: int) -> float:
    return cosine_lr(step, stage.total_steps, stage.lr, stage.lr_min, stage.warmup_steps)


def run_ssl_stage(net: torch.nn.Module, stage: SSLStage, images: torch.Tensor, rows: torch.Tensor, views, criterion,
                  out: Path, device: torch.device, *, arch_sha256: str, progress: bool = True,
                  console=None) -> dict[str, Any]:
    """Train ``net`` (in place) with ``stage`` on ``images[rows]``; resumable from ``out/<name>.ckpt``.

    Args:
        net: a derived network with an SSL projector (``net.project``), already on ``device``.
        images: uint8 ``[N, 3, R, R]``; ``rows`` the indices to train on (``len(rows) == stage.rows``).
        views: the two-view augmentation (``views(batch_uint8, generator) -> (v1, v2)``).
        criterion: the two-view loss ``(z1, z2) -> scalar``.
        out: where ``metrics.jsonl``, the checkpoint and ``summary.json`` go.
        arch_sha256: the architecture's hash: a checkpoint of another network is refused.

    Returns:
        the stage's summary (also written to ``out/summary.json``).

    Raises:
        CheckpointError: an unreadable checkpoint, or one of another network or stage.
        EdgenasError: the loss diverged.
    """
    from rich.console import Console

    from edgenas.seeds import derive_seed

    if len(rows) != stage.rows:
        raise ValueError(f"the stage is defined on {stage.rows} images, got {len(rows)}")
    console = console or Console(stderr=True)
    out.mkdir(parents=True, exist_ok=True)
    identity = {"arch_sha256": arch_sha256, **dataclasses.asdict(stage)}
    params = [p for n, p in net.named_parameters() if not n.startswith("classifier.")]
    opt = torch.optim.SGD(params, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)
    ckpt_path, metrics = out / f"{stage.name}.ckpt", out / "metrics.jsonl"
    epoch0, step0, global_step, elapsed0, cpu0 = 0, 0, 0, 0.0, 0.0
    ckpt = load_checkpoint(ckpt_path, CKPT_VERSION, identity, f"a {stage.name} stage")
    if ckpt is not None:
        net.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        epoch0, step0, global_step = ckpt["epoch"], ckpt["step"], ckpt["global_step"]
        elapsed0, cpu0 = ckpt["elapsed_s"], ckpt["cpu_s"]
        rewrite_jsonl(metrics, [r for r in read_jsonl(metrics) if r.get("global_step", 0) <= global_step])
    elif metrics.exists():
        metrics.unlink()  # records of an attempt that never reached its first checkpoint
    wall, cpu = time.perf_counter() - elapsed0, time.process_time() - cpu0

    def save(epoch: int, step: int) -> None:
        atomic_torch_save({"version": CKPT_VERSION, "config": identity, "epoch": epoch, "step": step,
                           "global_step": global_step, "elapsed_s": time.perf_counter() - wall,
                           "cpu_s": time.process_time() - cpu, "model": net.state_dict(),
                           "optimizer": opt.state_dict()}, ckpt_path)

    every = max(1, min(50, stage.steps_per_epoch))
    key = (stage.seed,) if stage.stream == 0 else (stage.seed, stage.stream)
    memory_format = torch.channels_last
    with ProgressBar(stage.name, stage.total_steps, global_step, f"epoch {epoch0 + 1}/{stage.epochs}", console,
                     enabled=progress, subtitle="SSL") as bar:
        for epoch in range(epoch0, stage.epochs):
            net.train()
            g = torch.Generator().manual_seed(derive_seed(*key, epoch, 1))
            perm = rows[torch.randperm(len(rows), generator=g)]
            bar.update(description=f"epoch {epoch + 1}/{stage.epochs}")
            for step in range(step0 if epoch == epoch0 else 0, stage.steps_per_epoch):
                lr = _lr(stage, global_step)
                for group in opt.param_groups:
                    group["lr"] = lr
                opt.zero_grad(set_to_none=True)
                value = 0.0
                for m in range(stage.accum_steps):
                    first = (step * stage.accum_steps + m) * stage.batch_size
                    idx = perm[first:first + stage.batch_size]
                    gv = torch.Generator().manual_seed(derive_seed(*key, epoch, step, m, 1))
                    v1, v2 = views(images[idx], gv)
                    x = torch.cat([v1, v2]).to(device, memory_format=memory_format)
                    z1, z2 = net.project(x).chunk(2)
                    loss = criterion(z1.float(), z2.float()) / stage.accum_steps
                    loss.backward()
                    value += float(loss.detach())
                if not math.isfinite(value):
                    raise EdgenasError(f"the {stage.name} SSL loss diverged at step {global_step} (lr {lr:.4g})")
                if stage.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, stage.grad_clip)
                opt.step()
                global_step += 1
                append_jsonl(metrics, {"event": "step", "epoch": epoch, "global_step": global_step, "lr": lr,
                                       "train_loss": value, "elapsed_s": time.perf_counter() - wall})
                bar.update(1, info=f"loss {value:8.2f}")
                if global_step % every == 0:
                    save(epoch, step + 1)
            save(epoch + 1, 0)
    losses = [r["train_loss"] for r in read_jsonl(metrics) if r.get("event") == "step"]
    summary = {"stage": stage.name, **dataclasses.asdict(stage), "steps": stage.total_steps,
               "first_loss": losses[0] if losses else None, "final_loss": losses[-1] if losses else None,
               "elapsed_s": round(time.perf_counter() - wall, 2), "cpu_s": round(time.process_time() - cpu, 2),
               "arch_sha256": arch_sha256}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def refine_recipe(cfg) -> dict[str, Any]:
    """The search options that define its refinement (what a finished one must match to be reused)."""
    return {"data": cfg.data, "data_root": cfg.data_root, "resolution": cfg.resolution, "level": cfg.level,
            "ssl": cfg.ssl, **{k: getattr(cfg, k) for k in ("refine_epochs", "refine_batch_size", "refine_lr",
                                                             "refine_subset", "subset", "seed", "momentum",
                                                             "weight_decay", "grad_clip", "bt_lambda",
                                                             "ntxent_temperature")}}


def refine_pool(cfg):
    """The images a search config's refinement trains on: every training image outside the fixed hold-out
    (``--refine-subset``: a stratified, seeded subset of them), labels unused."""
    from edgenas.data.datasets import load_dataset

    if cfg.data == "synthetic":  # the embedded set has no images beyond those generated for the search
        size = cfg.refine_subset or cfg.search_subset
    else:
        size = cfg.refine_subset
    return load_dataset(cfg.data, cfg.data_root, train=True, resolution=cfg.resolution, size=size,
                        level=cfg.level if cfg.data == "synthetic" else 1, seed=cfg.seed, holdout="train")


def ensure_refined(cfg, net: torch.nn.Module, out: Path, device: torch.device, *,
                   arch_sha256: str, progress: bool = True, console=None) -> dict[str, Any]:
    """Refine ``net`` (in place, already holding its starting weights) as ``cfg`` says, into ``out``.

    A finished stage (``out/summary.json`` and ``out/weights.pt`` of the same recipe) is loaded, not redone.
    """
    from edgenas.data.views import BarlowTwinsViews, channel_stats
    from edgenas.models import load_weights
    from edgenas.ssl import two_view_loss

    if cfg.strategy == "evolve":
        raise ConfigError("--refine-epochs continues a search's two-view objective; an evolved network "
                          "keeps training during its search")
    recipe = refine_recipe(cfg)
    summary_path, weights = out / "summary.json", out / "weights.pt"
    done = read_json(summary_path, "refinement summary") if summary_path.is_file() and weights.is_file() else {}
    if "recipe" in done:  # written last, so the stage finished; decided before the pool is read
        if done.get("arch_sha256") == arch_sha256 and done["recipe"] == recipe:
            net.load_state_dict(load_weights(weights))
            return done
        raise CheckpointError(f"{out} holds another refinement; delete it to refine with these options")
    pool = refine_pool(cfg)
    stage = refine_stage(cfg, len(pool))
    mean, std = channel_stats(pool.images)
    views = BarlowTwinsViews(resolution=cfg.resolution, mean=mean, std=std)
    summary = run_ssl_stage(net, stage, pool.images, torch.arange(len(pool)), views, two_view_loss(cfg.ssl, cfg),
                            out, device, arch_sha256=arch_sha256, progress=progress, console=console)
    summary["recipe"] = recipe
    atomic_torch_save({k: v.detach().cpu() for k, v in net.state_dict().items()}, weights)
    atomic_write_text(summary_path, json.dumps(summary, indent=2) + "\n")  # the weights first: done means both
    return summary
