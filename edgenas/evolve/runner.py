"""``edgenas search --strategy evolve``: a seed network grown under self-supervision, resumable, into a run directory.

The loop (SSEG-NASE style): train the seed network with the SSL objective;
when the loss plateaus, rank the places to grow or widen by gradient
sensitivity (:mod:`edgenas.evolve.importance`), try the best GROW, WIDEN and
WIDEN-hidden candidates that fit the budgets for a few steps each next to the
unchanged network, and keep the one with the best fitness
(``-loss / loss_unchanged - cost_weight * cost``), or none. The curriculum moves
through the synthetic levels (by epoch, or on plateau before any mutation).
At the start of the last epoch the sparse routing prunes the unimportant
hidden channels; the last epoch recovers from it. The grown network is
written as an ``EvolvedSpec`` with its weights (weight preservation).

Run directory: ``config.yaml``, ``arch.json``, ``weights.pt``, ``search.ckpt``,
``metrics.jsonl``, ``evolution.jsonl`` (every mutation tried: step, kind,
where, cost and loss before/after, accepted), ``summary.json``, ``report.md``,
``plots/evolution.png``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from typing import Any

import numpy as np
import torch

from edgenas.errors import BudgetError, ConfigError, EdgenasError
from edgenas.evolve.objective import Learner
from edgenas.evolve.proposals import cost_of, propose, seed_spec, spec_after
from edgenas.progress import ProgressBar
from edgenas.rundir import append_jsonl, atomic_torch_save, atomic_write_text, read_jsonl, rewrite_jsonl
from edgenas.search.loop import SearchLoop, SearchResult, resolve_target
from edgenas.seeds import derive_seed


__all__ = ["EvolveSearch"]

CKPT_VERSION = 1


class EvolveSearch(SearchLoop):
    """State and loop of one evolution search; :func:`edgenas.search.runner.run_search` drives it."""

    # --- set-up -----------------------------------------------------------------------
    def prepare(self) -> None:
        from edgenas.data.multicrop import MultiCropViews
        from edgenas.data.views import BarlowTwinsViews, channel_stats
        from edgenas.evolve.importance import ImportanceTracker
        from edgenas.evolve.schedule import Curriculum
        from edgenas.accelerator import resolve_device

        import os

        cfg = self.cfg
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError("--strategy evolve runs in one process (its network changes shape as it grows); "
                              "launch it without torchrun")
        self.profile = resolve_target(cfg.target)
        self.device = resolve_device(cfg.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.curriculum = Curriculum(mode=cfg.curriculum_mode) if cfg.curriculum else None
        if self.curriculum is not None:  # every synthetic level, plus the real data to mix in
            self.levels = {lv: cfg.load_images("synthetic", level=lv).images for lv in self.curriculum.levels}
            real = None if cfg.data == "synthetic" else cfg.load_images(holdout="train")
            self.real = None if real is None else real.images
            data = real or cfg.load_images("synthetic", level=self.curriculum.levels[-1])
        else:
            data = cfg.load_images(holdout="train")
            self.levels, self.real = {0: data.images}, None
        if len(data) < 2 * cfg.batch_size:
            raise ConfigError(f"{len(data)} images are too few for --batch-size {cfg.batch_size}; raise --subset")
        self.classes, self.data_name = list(data.classes), data.name
        self.mean, self.std = channel_stats(torch.cat(list(self.levels.values()) + ([self.real] if self.real
                                                                                    is not None else [])))
        self.views = (MultiCropViews(cfg.resolution, n_local=cfg.local_crops, mean=self.mean, std=self.std)
                      if "dino" in cfg.ssl_parts else BarlowTwinsViews(cfg.resolution, self.mean, self.std))
        self.pair_views = BarlowTwinsViews(cfg.resolution, self.mean, self.std)
        torch.manual_seed(cfg.seed)
        self.learner = Learner(cfg, seed_spec(cfg, len(self.classes)), self.device)
        self.tracker = ImportanceTracker(cfg.importance)
        self.latency = self._latency()
        seed_cost = cost_of(self.learner.spec, cfg, self.latency)
        if seed_cost["params"] > cfg.max_params or seed_cost["macs"] > cfg.max_macs:
            raise BudgetError(f"the seed network already has {seed_cost['params']:,} params / "
                              f"{seed_cost['macs'] / 1e6:.1f}M MACs, over --max-params {cfg.max_params:,} / "
                              f"--max-macs {cfg.max_macs / 1e6:.1f}M; lower --seed-channels or --seed-blocks")
        if cfg.latency_ms and seed_cost.get("latency_ms", 0) > cfg.latency_ms:
            raise BudgetError(f"the seed network is predicted at {seed_cost['latency_ms']:.4f} ms, over "
                              f"--latency-ms {cfg.latency_ms:g}")
        self.steps_per_epoch = max(len(images) for images in self.levels.values()) // cfg.batch_size
        self.total_steps = self.steps_per_epoch * cfg.epochs

    def _latency(self):
        """``spec -> predicted ms`` from the target's table of the evolved space (grown on demand), or None."""
        from edgenas.latency.evolved import search_table

        self.growing = search_table(self.cfg, self.profile, self.console, len(self.classes))
        self.latency_table = None if self.growing is None else self.growing.table
        return None if self.growing is None else self.growing.predict

    # --- data ---------------------------------------------------------------------------
    def _pool(self, stage: int) -> torch.Tensor:
        """The images of a curriculum stage: its synthetic level, and the easiest share of the real images."""
        if self.curriculum is None:
            return self.levels[0]
        synthetic = self.levels[self.curriculum.level(stage)]
        if self.real is None:
            return synthetic
        if self.real_order is None or self.curriculum.last(stage):
            return torch.cat([synthetic, self.real])
        share = (stage + 1) / len(self.curriculum.levels)
        count = max(1, int(round(share * len(self.real))))
        return torch.cat([synthetic, self.real[self.real_order[:count]]])

    def _score_real(self) -> None:
        from edgenas.evolve.difficulty import difficulty_scores

        if self.real is None:
            self.real_order = None
            return
        g = torch.Generator().manual_seed(derive_seed(self.cfg.seed, 55))
        scores = difficulty_scores(self.learner.model.net, self.real, self.pair_views, g, self.device)
        self.real_order = scores.argsort()

    def _batch(self, pool: torch.Tensor, idx: torch.Tensor, seed: int):
        """Views of a batch (2 global crops first) and, with the rotation task, a rotated global crop."""
        from edgenas.ssl import rotate_batch

        g = torch.Generator().manual_seed(seed)
        crops = self.views(pool[idx], g)
        crops = [c.to(self.device, memory_format=torch.channels_last) for c in crops]
        rotation = None
        if "rotation" in self.cfg.ssl_parts:
            x, k = rotate_batch(crops[0], g)
            rotation = (x.contiguous(memory_format=torch.channels_last), k)
        return crops, rotation

    # --- checkpoints --------------------------------------------------------------------
    def save_checkpoint(self, position: dict, done: bool = False) -> None:
        atomic_torch_save({"version": CKPT_VERSION, "strategy": "evolve", "config": self.cfg.identity(),
                           **position, "done": done, "learner": self.learner.state_dict(),
                           "tracker": self.tracker.state_dict(),
                           "real_order": getattr(self, "real_order", None)}, self.ckpt_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        from edgenas.rundir import load_checkpoint

        return load_checkpoint(self.ckpt_path, CKPT_VERSION, self.cfg.identity(), "an evolve search",
                               {"strategy": "evolve"})

    # --- mutation rounds ----------------------------------------------------------------
    def _lr(self, global_step: int) -> float:
        from edgenas.schedules import cosine_lr

        return cosine_lr(global_step, self.total_steps, self.cfg.lr, self.cfg.lr_min)

    def _momentum(self, global_step: int) -> float:
        from edgenas.ssl.dino import cosine_momentum

        if self.cfg.dino_momentum_schedule == "constant":
            return self.cfg.dino_momentum
        return cosine_momentum(global_step, self.total_steps, self.cfg.dino_momentum)

    def _trial(self, learner: Learner, pool: torch.Tensor, round_: int, global_step: int, fitness_batch) -> float:
        """Train ``learner`` for ``trial_steps`` on seeded batches; its fitness loss on the fixed batch after."""
        cfg = self.cfg
        for t in range(cfg.trial_steps):
            g = torch.Generator().manual_seed(derive_seed(cfg.seed, round_, t, 3))
            idx = torch.randint(0, len(pool), (cfg.batch_size,), generator=g)
            crops, rotation = self._batch(pool, idx, derive_seed(cfg.seed, round_, t, 4))
            learner.step(crops, rotation, self._lr(global_step), self._momentum(global_step))
        return learner.fitness_loss(*fitness_batch)

    def mutation_round(self, round_: int, global_step: int, pool: torch.Tensor) -> dict | None:
        """Try the best candidates of each kind next to the unchanged network; keep the fittest (or nothing)."""
        cfg = self.cfg
        candidates = []
        for mutation, sensitivity in propose(self.learner.spec, self.tracker, cfg):
            if any(m.kind == mutation.kind for m, _, _ in candidates):
                continue  # the most sensitive place of each kind
            cost = cost_of(spec_after(self.learner.spec, mutation), cfg, self.latency)
            over = cost["params"] > cfg.max_params or cost["macs"] > cfg.max_macs or (
                cfg.latency_ms is not None and cost.get("latency_ms", 0) > cfg.latency_ms)
            if not over:
                candidates.append((mutation, sensitivity, cost))
            if len(candidates) == cfg.trial_candidates:
                break
        if not candidates:
            return None
        g = torch.Generator().manual_seed(derive_seed(cfg.seed, round_, 9))
        fitness_batch = self._batch(pool, torch.randint(0, len(pool), (cfg.batch_size,), generator=g),
                                    derive_seed(cfg.seed, round_, 10))
        before = cost_of(self.learner.spec, cfg, self.latency)
        loss_before = self.learner.fitness_loss(*fitness_batch)
        current = self.learner.clone()
        loss_current = self._trial(current, pool, round_, global_step, fitness_batch)
        best, best_fitness = current, -1.0 - cfg.fitness_cost_weight * before["cost"]
        tried = []
        for k, (mutation, sensitivity, cost) in enumerate(candidates):
            learner = self.learner.mutated(mutation, derive_seed(cfg.seed, round_, k, 5))
            loss = self._trial(learner, pool, round_, global_step, fitness_batch)
            fitness = -loss / max(loss_current, 1e-12) - cfg.fitness_cost_weight * cost["cost"]
            tried.append({"kind": mutation.kind, "where": mutation.where, "width": mutation.width,
                          "what": mutation.describe(), "sensitivity": sensitivity, "params_after": cost["params"],
                          "macs_after": cost["macs"], "latency_ms_after": cost.get("latency_ms"),
                          "loss_after": loss, "fitness": fitness})
            if fitness > best_fitness:
                best, best_fitness = learner, fitness
        accepted = best is not current
        chosen = next((t for t in tried if t["fitness"] == best_fitness), None) if accepted else None
        self.learner = best
        if accepted:
            self.tracker.reset()
        return {"event": "mutation", "round": round_, "global_step": global_step, "accepted": accepted,
                "chosen": chosen, "candidates": tried, "params_before": before["params"],
                "macs_before": before["macs"], "latency_ms_before": before.get("latency_ms"),
                "loss_before": loss_before, "loss_unchanged": loss_current,
                "fitness_unchanged": -1.0 - cfg.fitness_cost_weight * before["cost"],
                "blocks": len(self.learner.spec.blocks), "spec": self.learner.spec.to_dict()}

    def prune(self, global_step: int) -> dict:
        """Remove each hidden layer's pruned path (kept: at least 8 channels, a multiple of 4)."""
        from edgenas.evolve.importance import complementary_masks
        from edgenas.evolve.mutations import prune_hidden

        learner, cfg = self.learner, self.cfg
        before = cost_of(learner.spec, cfg, self.latency)
        spec = learner.spec
        state = {k: v.detach().cpu() for k, v in learner.model.state_dict().items()}
        t_state = None if learner.teacher is None else {k: v.detach().cpu()
                                                        for k, v in learner.teacher.state_dict().items()}
        removed = {}
        for i, block in enumerate(learner.spec.blocks):
            scores = self.tracker.unit(f"block{i}.hidden")
            if scores.numel() != block.hidden:
                continue
            important, _ = complementary_masks(scores, cfg.importance_mass)
            keep_n = min(block.hidden, max(8, int(math.ceil(int(important.sum()) / 4)) * 4))
            if keep_n >= block.hidden:
                continue
            keep = torch.zeros(block.hidden, dtype=torch.bool)
            keep[scores.argsort(descending=True)[:keep_n]] = True
            if t_state is not None:
                t_state = prune_hidden(spec, t_state, i, keep).state
            result = prune_hidden(spec, state, i, keep)
            spec, state = result.spec, result.state
            removed[i] = block.hidden - keep_n
        if removed:
            new = Learner(cfg, spec, self.device)  # a fresh optimiser: the pruned layers' moments are gone
            new.model.load_state_dict(state)
            if t_state is not None:
                new.teacher.load_state_dict(t_state)
                new.dino_loss = learner.dino_loss
            self.learner = new
            self.tracker.reset()
        after = cost_of(self.learner.spec, cfg, self.latency)
        return {"event": "prune", "global_step": global_step, "removed_hidden": removed,
                "params_before": before["params"], "params_after": after["params"],
                "macs_before": before["macs"], "macs_after": after["macs"], "spec": self.learner.spec.to_dict()}

    # --- the loop ---------------------------------------------------------------------
    def train(self) -> tuple[float, bool]:
        from edgenas.evolve.schedule import plateaued

        cfg = self.cfg
        ckpt = self.load_checkpoint()
        pos = {"epoch": 0, "step": 0, "global_step": 0, "elapsed_s": 0.0, "stage": 0, "round": 0,
               "last_change": 0, "losses": [], "pruned": False}
        self.real_order = None
        resumed = ckpt is not None
        if ckpt is not None:
            self.learner = Learner.from_state(cfg, ckpt["learner"], self.device)
            self.tracker.load_state_dict(ckpt["tracker"])
            self.real_order = ckpt.get("real_order")
            pos.update({k: ckpt[k] for k in pos})
            for name in ("metrics.jsonl", "evolution.jsonl"):
                path = self.run_dir / name
                rewrite_jsonl(path, [r for r in read_jsonl(path) if r.get("global_step", 0) <= pos["global_step"]])
            if ckpt.get("done"):
                return pos["elapsed_s"], True
            self.console.print(f"resuming {self.run_dir} at epoch {pos['epoch'] + 1}, step {pos['step']}")
        elif self.real is not None:
            self._score_real()
        t0 = time.perf_counter() - pos["elapsed_s"]

        def save() -> None:
            self.save_checkpoint({**pos, "elapsed_s": time.perf_counter() - t0})

        with ProgressBar("evolve", self.total_steps, pos["global_step"], f"epoch {pos['epoch'] + 1}/{cfg.epochs}",
                         self.console, enabled=cfg.progress) as bar:
            for epoch in range(pos["epoch"], cfg.epochs):
                if self.curriculum is not None and self.curriculum.mode == "epochs":
                    stage = self.curriculum.stage_at_epoch(epoch, cfg.epochs)
                    if stage != pos["stage"]:
                        pos["stage"], pos["losses"] = stage, []
                        self._score_real()
                        append_jsonl(self.run_dir / "evolution.jsonl", {"event": "curriculum", "stage": stage,
                                                                        "level": self.curriculum.level(stage),
                                                                        "global_step": pos["global_step"]})
                last_epoch = epoch == cfg.epochs - 1
                if last_epoch and cfg.sparse_routing and not pos["pruned"] and cfg.epochs > 1:
                    append_jsonl(self.run_dir / "evolution.jsonl", self.prune(pos["global_step"]))
                    pos["pruned"] = True
                pool = self._pool(pos["stage"])
                g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 1))
                order = torch.randperm(len(pool), generator=g)
                bar.update(description=f"epoch {epoch + 1}/{cfg.epochs}")
                for step in range(pos["step"] if epoch == pos["epoch"] else 0, self.steps_per_epoch):
                    t_step = time.perf_counter()
                    idx = order[(step * cfg.batch_size) % len(pool):][:cfg.batch_size]
                    if len(idx) < cfg.batch_size:
                        idx = torch.cat([idx, order[:cfg.batch_size - len(idx)]])
                    crops, rotation = self._batch(pool, idx, derive_seed(cfg.seed, epoch, step, 2))
                    result = self.learner.step(crops, rotation, self._lr(pos["global_step"]),
                                               self._momentum(pos["global_step"]), self.tracker)
                    if not math.isfinite(result.total):
                        raise EdgenasError(f"the SSL loss diverged at step {pos['global_step']}; lower --lr")
                    pos["global_step"] += 1
                    pos["step"] = step + 1
                    pos["losses"] = (pos["losses"] + [result.total])[-4 * cfg.plateau_window:]
                    images = cfg.batch_size * len(crops) / (time.perf_counter() - t_step)
                    append_jsonl(self.run_dir / "metrics.jsonl", {
                        "event": "step", "epoch": epoch, "step": step, "global_step": pos["global_step"],
                        "train_loss": result.total, **{f"loss_{k}": v for k, v in result.parts.items()},
                        "lr": self._lr(pos["global_step"]), "blocks": len(self.learner.spec.blocks),
                        "stage": pos["stage"], "images_per_s": images, "elapsed_s": time.perf_counter() - t0})
                    bar.update(1, info=f"loss {result.total:8.3f}  {len(self.learner.spec.blocks)} "
                                                     f"blocks")
                    since = pos["global_step"] - pos["last_change"]
                    if (not last_epoch and cfg.evolution and since >= cfg.min_steps_between_mutations
                            and plateaued(pos["losses"], cfg.plateau_window, cfg.plateau_threshold)):
                        pos["last_change"], pos["losses"] = pos["global_step"], []
                        if (self.curriculum is not None and self.curriculum.mode == "plateau"
                                and not self.curriculum.last(pos["stage"])):
                            pos["stage"] += 1
                            self._score_real()
                            append_jsonl(self.run_dir / "evolution.jsonl", {
                                "event": "curriculum", "stage": pos["stage"],
                                "level": self.curriculum.level(pos["stage"]), "global_step": pos["global_step"]})
                            pool = self._pool(pos["stage"])
                            order = torch.randperm(len(pool), generator=g)
                        else:
                            pos["round"] += 1
                            record = self.mutation_round(pos["round"], pos["global_step"], pool)
                            if record is not None:
                                append_jsonl(self.run_dir / "evolution.jsonl", record)
                                what = record["chosen"]["what"] if record["accepted"] else "kept the network"
                                self.console.print(f"step {pos['global_step']}: {what}")
                    if pos["global_step"] % cfg.checkpoint_every == 0:
                        save()
                    if self.on_step is not None:
                        self.on_step(pos["global_step"])
                pos.update(epoch=epoch + 1, step=0)
                save()
        return time.perf_counter() - t0, resumed

    # --- result -----------------------------------------------------------------------
    def finish(self, elapsed: float, resumed: bool):
        from edgenas.report import write_markdown
        from edgenas.latency.target import measure_on_target

        cfg = self.cfg
        spec = dataclasses.replace(self.learner.spec, extra=(("classes", ",".join(self.classes)),
                                                             ("mean", ",".join(f"{m:.5f}" for m in self.mean)),
                                                             ("std", ",".join(f"{s:.5f}" for s in self.std))))
        cost = cost_of(spec, cfg, self.latency)
        if cost["params"] > cfg.max_params or cost["macs"] > cfg.max_macs:  # every mutation was checked; a guard
            raise BudgetError(f"the evolved network has {cost['params']:,} params / {cost['macs'] / 1e6:.1f}M MACs, "
                              "over budget")
        spec.save(self.run_dir / "arch.json")
        state = {k[len("net."):]: v.detach().cpu() for k, v in self.learner.model.state_dict().items()
                 if k.startswith("net.")}
        atomic_torch_save(state, self.run_dir / "weights.pt")
        steps = [r for r in read_jsonl(self.run_dir / "metrics.jsonl") if r.get("event") == "step"]
        events = read_jsonl(self.run_dir / "evolution.jsonl")
        mutations = [e for e in events if e.get("event") == "mutation"]
        ips = [r["images_per_s"] for r in steps[1:]] or [r["images_per_s"] for r in steps]
        summary = {
            "run_dir": str(self.run_dir), "strategy": "evolve", "ssl": cfg.ssl, "target": cfg.target,
            "target_device": getattr(self.profile, "name", None), "data": self.data_name,
            "images": int(sum(len(v) for v in self.levels.values()) + (0 if self.real is None else len(self.real))),
            "params": cost["params"], "macs": cost["macs"], "max_params": cfg.max_params, "max_macs": cfg.max_macs,
            "blocks": len(spec.blocks), "mutation_rounds": len(mutations),
            "mutations_accepted": sum(bool(e["accepted"]) for e in mutations),
            "pruned": next((e for e in events if e.get("event") == "prune"), None) is not None,
            "epochs": cfg.epochs, "steps": self.total_steps, "elapsed_s": round(elapsed, 2),
            "images_per_s_median": float(np.median(ips)) if ips else None,
            "final_train_loss": steps[-1]["train_loss"] if steps else None, "device": str(self.device),
            "torch": torch.__version__, "arch_sha256": spec.sha256(),
            "predicted_latency_ms": cost.get("latency_ms"), "latency_budget_ms": cfg.latency_ms,
            "latency_table": None if self.latency_table is None else self.latency_table.label,
            "latency_table_estimated": None if self.latency_table is None else self.latency_table.estimated,
            **measure_on_target(spec, self.profile, self.latency_table, self.console),
        }
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
        write_markdown(self.run_dir)
        self.save_checkpoint({"epoch": cfg.epochs, "step": 0, "global_step": self.total_steps, "elapsed_s": elapsed,
                              "stage": 0, "round": 0, "last_change": 0, "losses": [], "pruned": True}, done=True)
        return SearchResult(self.run_dir, spec, cost["params"], cost["macs"], elapsed, resumed, summary)
