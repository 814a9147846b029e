"""The DARTS strategy: a supernet of every candidate op on every edge, its alphas trained bilevel, then derived.

:func:`edgenas.search.runner.run_search` drives it: :meth:`DartsSearch.prepare`,
:meth:`~DartsSearch.train` (resumable) and :meth:`~DartsSearch.finish` (derive,
repair to the budgets, transfer the weights, write the run directory).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

import numpy as np
import torch

from edgenas.accelerator import autocast, check_accelerator_options
from edgenas.errors import BudgetError, ConfigError, EdgenasError
from edgenas.plugins import import_plugins
from edgenas.progress import ProgressBar
from edgenas.rundir import append_jsonl, atomic_torch_save, atomic_write_text, read_jsonl, rewrite_jsonl
from edgenas.schedules import cosine_lr
from edgenas.search.budgets import BudgetsMixin
from edgenas.search.loop import SearchLoop, SearchResult, resolve_target
from edgenas.seeds import derive_seed

__all__ = ["CKPT_VERSION", "DartsSearch"]

CKPT_VERSION = 1


class DartsSearch(BudgetsMixin, SearchLoop):
    """State and loop of one DARTS search; :func:`run_search` drives it."""

    # --- set-up -----------------------------------------------------------------------
    def prepare(self) -> None:
        from edgenas.data.splits import halves
        from edgenas.data.views import BarlowTwinsViews, channel_stats
        from edgenas.search.cost import CostModel, check_feasible
        from edgenas.search.derive import spec_from_supernet
        from edgenas.space.network import DARTSAutoSSL
        from edgenas.ssl import SSL_METHODS, two_view_loss

        cfg = self.cfg
        import_plugins(cfg.plugins)
        from edgenas.distributed import setup

        self.profile = resolve_target(cfg.target)
        self.world = setup(cfg.device)
        self.device = self.world.device
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        SSL_METHODS.get(cfg.ssl)
        check_accelerator_options(cfg, self.device)
        if self.world.distributed:
            if cfg.batch_size % self.world.size:
                raise ConfigError(f"--batch-size {cfg.batch_size} (the global batch) must divide among "
                                  f"{self.world.size} processes")
            if cfg.order == "second":
                raise ConfigError("--order second is single-process only (its unrolled step is not data-parallel)")

        from edgenas.profiler import check_buildable
        from edgenas.search.layout import choose_layout
        from edgenas.space.ops import OPS

        for name in cfg.ops:
            OPS.get(name)  # an unknown op fails before the data is read, with close matches
        if cfg.resolution % 4:
            raise ConfigError(f"--resolution {cfg.resolution} must be divisible by 4 (two reduction cells halve it)")
        data = cfg.load_images(holdout="train")  # the fixed validation hold-out is never searched on
        if len(data) < 2 * cfg.batch_size * cfg.accum_steps:
            raise ConfigError(
                f"{len(data)} images are too few for --batch-size {cfg.batch_size} x --accum-steps "
                f"{cfg.accum_steps} on each half of the bilevel split; raise --subset or lower the batch"
            )
        self.num_classes = len(data.classes)
        self.classes = list(data.classes)
        # the size of the space: --channels/--cells, or the largest layout whose expected network fits the budgets
        self.layout = choose_layout(cfg, self.num_classes)

        def supernet() -> DARTSAutoSSL:
            return DARTSAutoSSL(self.layout.channels, self.layout.cells, cfg.nodes, cfg.ops, cfg.stem_multiplier,
                                cfg.projector, recompute=cfg.recomputes)

        check_buildable(supernet, cfg.resolution, "the supernet of these options")  # counted, not allocated
        torch.manual_seed(cfg.seed)
        self.net = supernet()
        if cfg.resolution % (2 ** len(self.net.reduction_cells)):
            raise ConfigError(f"--resolution {cfg.resolution} must be divisible by 2^{len(self.net.reduction_cells)}")
        self.template = spec_from_supernet(self.net, resolution=cfg.resolution, num_classes=self.num_classes)
        self.cost_model = CostModel(self.template, self.net.op_names)
        self.min_cost = check_feasible(self.cost_model, cfg.max_params, cfg.max_macs)
        self.latency_model = self._latency_model()

        self.images = data.images  # uint8 [N, 3, R, R], labels unused: the search is label-free
        self.data_name = data.name
        w_idx, a_idx = halves(torch.arange(len(data)), cfg.seed)
        self.w_idx, self.a_idx = torch.as_tensor(w_idx), torch.as_tensor(a_idx)
        mean, std = channel_stats(self.images)
        self.views = BarlowTwinsViews(resolution=cfg.resolution, mean=mean, std=std)
        self.mean, self.std = mean, std

        # NHWC is 1.3-10x faster for the depthwise and 1x1 convs of this space on CPU (oneDNN),
        # measured in benchmarks/search_throughput.py; CUDA benefits too with cuDNN.
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.sync_bn:
            from edgenas.distributed import sync_batch_norm

            self.net = sync_batch_norm(self.net, self.device)
        self.net.to(self.device, memory_format=self.memory_format)
        # the forward every rank runs: DDP averages the weight and architecture gradients
        self.model = self.net
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.model = DistributedDataParallel(  # a sampled path leaves most ops out of each step
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=cfg.supernet == "sampled")
        self.criterion = two_view_loss(cfg.ssl, cfg)
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                     weight_decay=cfg.weight_decay)
        self.a_opt = torch.optim.Adam(self.net.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999),
                                      weight_decay=cfg.arch_weight_decay)
        per_step = cfg.batch_size * cfg.accum_steps
        self.steps_per_epoch = min(len(self.w_idx), len(self.a_idx)) // per_step
        self.total_steps = self.steps_per_epoch * cfg.epochs

    def _batch_views(self, idx: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views of the global batch ``idx``, drawn whole (as one process would), then this rank's rows."""
        g = torch.Generator().manual_seed(seed)
        v1, v2 = (self.world.shard(v) for v in self.views(self.images[idx], g))
        return (v1.to(self.device, memory_format=self.memory_format, non_blocking=True),
                v2.to(self.device, memory_format=self.memory_format, non_blocking=True))

    def _loss(self, v1: torch.Tensor, v2: torch.Tensor, paths: torch.Tensor | None = None) -> torch.Tensor:
        from edgenas.distributed import gather
        from edgenas.search.bilevel import ssl_loss

        with autocast(self.cfg, self.device):
            return ssl_loss(self.model, self.criterion, v1, v2,
                            gather=(lambda z: gather(z, self.world)) if self.world.distributed else None,
                            paths=paths)

    def _paths(self, global_step: int, seed: int, grad: bool) -> torch.Tensor | None:
        """The sampled path of a step (``--supernet sampled``; None for the full supernet).

        The Gumbel temperature falls linearly from ``--tau-max`` to ``--tau-min`` over the search;
        ``grad``: keep the straight-through gradient to the alphas (an architecture step).
        """
        cfg = self.cfg
        if cfg.supernet != "sampled":
            return None
        t = min(1.0, global_step / max(1, self.total_steps - 1))
        tau = cfg.tau_max + t * (cfg.tau_min - cfg.tau_max)
        paths = self.net.sample_paths(tau, torch.Generator().manual_seed(seed))
        return paths if grad else paths.detach()

    # --- checkpoints ------------------------------------------------------------------
    def save_checkpoint(self, epoch: int, step: int, global_step: int, elapsed: float, done: bool = False) -> None:
        if not self.world.main:
            return
        atomic_torch_save({
            "version": CKPT_VERSION, "strategy": "darts", "config": self.cfg.identity(), "epoch": epoch, "step": step,
            "global_step": global_step, "elapsed_s": elapsed, "done": done,
            "model": self.net.state_dict(), "w_opt": self.w_opt.state_dict(), "a_opt": self.a_opt.state_dict(),
        }, self.ckpt_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        from edgenas.rundir import load_checkpoint

        return load_checkpoint(self.ckpt_path, CKPT_VERSION, self.cfg.identity(), "a DARTS search",
                               {"strategy": "darts"})

    # --- the loop ---------------------------------------------------------------------
    def train(self) -> tuple[float, bool]:
        """Run (or resume) the bilevel optimisation; returns (elapsed seconds, resumed)."""
        cfg = self.cfg
        ckpt = self.load_checkpoint()
        start_epoch, start_step, global_step, elapsed0 = 0, 0, 0, 0.0
        resumed = ckpt is not None
        if ckpt is not None:
            self.net.load_state_dict(ckpt["model"])
            self.w_opt.load_state_dict(ckpt["w_opt"])
            self.a_opt.load_state_dict(ckpt["a_opt"])
            start_epoch, start_step, global_step = ckpt["epoch"], ckpt["step"], ckpt["global_step"]
            elapsed0 = ckpt["elapsed_s"]
            self.world.barrier()  # every rank has read the checkpoint before rank 0 writes again
            if self.world.main:
                for name in ("metrics.jsonl", "alpha.jsonl"):  # drop events logged after the checkpoint
                    path = self.run_dir / name
                    rewrite_jsonl(path, [r for r in read_jsonl(path) if r.get("global_step", 0) <= global_step])
                append_jsonl(self.run_dir / "metrics.jsonl", {"event": "resume", "global_step": global_step,
                                                              "epoch": start_epoch, "step": start_step})
            if ckpt.get("done"):
                return elapsed0, True
            self.console.print(f"resuming {self.run_dir} at epoch {start_epoch + 1}, step {start_step}")

        t0 = time.perf_counter() - elapsed0
        per = cfg.batch_size
        with ProgressBar("search", self.total_steps, global_step, f"epoch {start_epoch + 1}/{cfg.epochs}",
                         self.console, enabled=cfg.progress and self.world.main) as progress:
            for epoch in range(start_epoch, cfg.epochs):
                self.net.train()
                gw = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 1))
                ga = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 2))
                perm_w = self.w_idx[torch.randperm(len(self.w_idx), generator=gw)]
                perm_a = self.a_idx[torch.randperm(len(self.a_idx), generator=ga)]
                search_alpha = epoch >= cfg.warmup_epochs
                first = start_step if epoch == start_epoch else 0
                progress.update(description=f"epoch {epoch + 1}/{cfg.epochs}")
                for step in range(first, self.steps_per_epoch):
                    t_step = time.perf_counter()
                    lr = cosine_lr(global_step, self.total_steps, cfg.lr, cfg.lr_min)
                    for group in self.w_opt.param_groups:
                        group["lr"] = lr
                    micro = [(perm_w[(step * cfg.accum_steps + m) * per:(step * cfg.accum_steps + m + 1) * per],
                              perm_a[(step * cfg.accum_steps + m) * per:(step * cfg.accum_steps + m + 1) * per])
                             for m in range(cfg.accum_steps)]
                    arch_step = search_alpha and global_step % cfg.arch_interval == 0
                    train_loss, arch_loss = self.step(micro, epoch, step, global_step, lr, arch_step)
                    if not math.isfinite(train_loss):
                        raise EdgenasError(f"the SSL loss diverged at step {global_step} (lr {lr:.4g}); lower --lr")

                    global_step += 1
                    dt = time.perf_counter() - t_step
                    images = 2 * per * cfg.accum_steps * (2 if arch_step else 1)
                    with torch.no_grad():
                        e_params, e_macs = self.cost_model.expected(*self.net.arch_weights())
                        e_ms = (float(self.latency_model.expected(*self.net.arch_weights()))
                                if self.latency_model is not None else None)
                    self._log("metrics.jsonl", {
                        "event": "step", "epoch": epoch, "step": step, "global_step": global_step,
                        "train_loss": train_loss, "arch_loss": arch_loss, "lr": lr,
                        "expected_params": float(e_params), "expected_macs": float(e_macs),
                        "expected_latency_ms": e_ms,
                        "step_s": dt, "images_per_s": images / dt, "elapsed_s": time.perf_counter() - t0,
                    })
                    progress.update(1, info=f"loss {train_loss:8.2f}  {images / dt:6.0f} img/s")
                    if global_step % cfg.checkpoint_every == 0:
                        self.save_checkpoint(epoch, step + 1, global_step, time.perf_counter() - t0)
                    if self.on_step is not None:
                        self.on_step(global_step)
                self._log_alpha(epoch, global_step)
                self.save_checkpoint(epoch + 1, 0, global_step, time.perf_counter() - t0)
        return time.perf_counter() - t0, resumed

    def step(self, micro: list[tuple[torch.Tensor, torch.Tensor]], epoch: int, step: int, global_step: int,
             lr: float, arch_step: bool) -> tuple[float, float]:
        """One search step on the micro-batches ``micro`` (weights-half and arch-half rows of each):
        an architecture step first when ``arch_step``, then a weights step; returns (train loss, arch loss)."""
        from edgenas.search.bilevel import unrolled_arch_grads

        cfg = self.cfg
        arch_loss = float("nan")
        if arch_step:
            self.a_opt.zero_grad(set_to_none=True)
            arch_loss = 0.0
            for m, (wi, ai) in enumerate(micro):
                arch_views = self._batch_views(ai, derive_seed(cfg.seed, epoch, step, m, 2))
                if cfg.order == "second":
                    train_views = self._batch_views(wi, derive_seed(cfg.seed, epoch, step, m, 1))
                    grads, value = unrolled_arch_grads(self.net, self.criterion, train_views, arch_views,
                                                       self.penalty, lr, cfg.weight_decay)
                    for p, g in zip(self.net.arch_parameters(), grads):
                        p.grad = g / cfg.accum_steps if p.grad is None else p.grad + g / cfg.accum_steps
                    arch_loss += value / cfg.accum_steps
                else:
                    paths = self._paths(global_step, derive_seed(cfg.seed, epoch, step, m, 3), True)
                    loss = self._loss(*arch_views, paths) + self.penalty()
                    (loss / cfg.accum_steps).backward()
                    arch_loss += float(loss.detach()) / cfg.accum_steps
            self.a_opt.step()
        self.w_opt.zero_grad(set_to_none=True)
        train_loss = 0.0
        for m, (wi, _) in enumerate(micro):
            v1, v2 = self._batch_views(wi, derive_seed(cfg.seed, epoch, step, m, 1))
            loss = self._loss(v1, v2, self._paths(global_step, derive_seed(cfg.seed, epoch, step, m, 4), False))
            (loss / cfg.accum_steps).backward()
            train_loss += float(loss.detach()) / cfg.accum_steps
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.net.weight_parameters(), cfg.grad_clip)
        self.w_opt.step()
        return train_loss, arch_loss

    def _log(self, name: str, record: dict) -> None:
        if self.world.main:  # one writer: rank 0
            append_jsonl(self.run_dir / name, record)

    def _log_alpha(self, epoch: int, global_step: int) -> None:
        from edgenas.search.derive import derive_genotype

        with torch.no_grad():
            wn, wr = (w.cpu() for w in self.net.arch_weights())
            e_params, e_macs = self.cost_model.expected(wn, wr)
        self._log("alpha.jsonl", {
            "epoch": epoch, "global_step": global_step, "ops": list(self.net.op_names),
            "normal": [[round(float(v), 5) for v in row] for row in wn],
            "reduce": [[round(float(v), 5) for v in row] for row in wr],
            "genotype_normal": derive_genotype(wn, self.net.op_names, self.net.nodes).to_list(),
            "genotype_reduce": derive_genotype(wr, self.net.op_names, self.net.nodes).to_list(),
            "expected_params": float(e_params), "expected_macs": float(e_macs),
        })

    # --- result -----------------------------------------------------------------------
    def finish(self, elapsed: float, resumed: bool) -> SearchResult:
        from edgenas.profiler import count_macs, count_params
        from edgenas.search.cost import repair
        from edgenas.search.derive import (
            derive_genotype,
            spec_from_supernet,
            transfer_weights,
        )

        cfg = self.cfg
        self.net.eval()
        if not all(self.world.same_everywhere(a) for a in self.net.arch_parameters()):  # DDP keeps them equal
            raise EdgenasError("the architecture weights differ between ranks; the derived network would too")
        wn, wr = (w.detach().cpu() for w in self.net.arch_weights())
        normal = derive_genotype(wn, self.net.op_names, self.net.nodes)
        reduce = derive_genotype(wr, self.net.op_names, self.net.nodes)
        latency = (self.latency_model, self.latency_target) if self.latency_model and cfg.latency_ms else None
        normal, reduce, changes = repair(self.cost_model, normal, reduce, wn, wr, cfg.max_params, cfg.max_macs,
                                         latency=latency)
        spec = spec_from_supernet(self.net.cpu(), resolution=cfg.resolution, num_classes=self.num_classes,
                                  normal=normal, reduce=reduce)
        spec = dataclasses.replace(spec, extra=(("classes", ",".join(self.classes)),
                                                ("mean", ",".join(f"{m:.5f}" for m in self.mean)),
                                                ("std", ",".join(f"{s:.5f}" for s in self.std))))
        derived = transfer_weights(self.net, spec)
        derived, spec, self.widened_from = self._fill(derived, spec)
        deploy = derived.deployable()
        params, macs = count_params(deploy), count_macs(deploy, cfg.resolution)
        if params > cfg.max_params or macs > cfg.max_macs:  # the cost tables are exact; this is a guard
            raise BudgetError(f"derived network has {params:,} params / {macs / 1e6:.1f}M MACs, over budget")
        if not self.world.main:  # the same network on every rank; rank 0 writes it
            self.world.barrier()
            return SearchResult(self.run_dir, spec, params, macs, elapsed, resumed, {})
        latency = self._latency_summary(spec)
        spec.save(self.run_dir / "arch.json")
        atomic_torch_save(derived.state_dict(), self.run_dir / "weights.pt")
        steps = [r for r in read_jsonl(self.run_dir / "metrics.jsonl") if r.get("event") == "step"]
        ips = [r["images_per_s"] for r in steps[1:]] or [r["images_per_s"] for r in steps]
        summary = {
            "run_dir": str(self.run_dir), "target": cfg.target,
            "target_device": getattr(self.profile, "name", None), "data": self.data_name,
            "images": int(len(self.images)), "params": params, "macs": macs,
            "max_params": cfg.max_params, "max_macs": cfg.max_macs, "budget_repairs": changes,
            "min_params_in_space": self.min_cost.params, "min_macs_in_space": self.min_cost.macs,
            "epochs": cfg.epochs, "steps": self.total_steps, "elapsed_s": round(elapsed, 2),
            "images_per_s_median": float(np.median(ips)) if ips else None,
            "final_train_loss": steps[-1]["train_loss"] if steps else None,
            "device": str(self.device), "processes": self.world.size, "torch": torch.__version__,
            "arch_sha256": spec.sha256(), "supernet": cfg.supernet, "layout": self.layout.to_dict(),
            "widened_from_channels": self.widened_from, "channels": spec.channels,
            "budget_share": {"params": round(params / cfg.max_params, 4), "macs": round(macs / cfg.max_macs, 4),
                             **({"latency": round(latency["predicted_latency_ms"] / cfg.latency_ms, 4)}
                                if cfg.latency_ms and latency.get("predicted_latency_ms") is not None else {})},
            **latency,
        }
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        from edgenas.report import write_markdown

        write_markdown(self.run_dir)
        self.save_checkpoint(cfg.epochs, 0, self.total_steps, elapsed, done=True)
        self.world.barrier()
        return SearchResult(self.run_dir, spec, params, macs, elapsed, resumed, summary)
