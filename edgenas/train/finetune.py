"""``edgenas finetune``: supervised training on few labels, resumable, into its own directory.

Layout of ``out/``: ``config.yaml`` (every option), ``metrics.jsonl`` (one line
per epoch), ``finetune.ckpt`` (to resume), ``weights.pt`` (the last epoch),
``best.pt`` (the epoch the selection split liked best), ``arch.json`` (a
searched network, with its classes and normalisation), ``result.json``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from edgenas.accelerator import amp_of, autocast
from edgenas.errors import CheckpointError, ConfigError, EdgenasError
from edgenas.rundir import append_jsonl, atomic_torch_save, atomic_write_text, read_jsonl, rewrite_jsonl
from bench.files import read_json
from edgenas.outputs import job_output
from edgenas.progress import ProgressBar
from edgenas.schedules import schedule_lr
from edgenas.train.config import FinetuneConfig, write_config
from edgenas.seeds import derive_seed

__all__ = ["CKPT_VERSION", "FinetuneResult", "Finetuner", "evaluate_accuracy", "run_finetune"]

CKPT_VERSION = 1
EVAL_BATCH = 256


@dataclass(frozen=True)
class FinetuneResult:
    """What a finished fine-tuning produced: its directory and ``result.json``."""

    out: Path
    result: dict[str, Any]
    resumed: bool


@torch.no_grad()
def evaluate_accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, mean, std,
                      device: torch.device, memory_format=torch.channels_last) -> tuple[float, float]:
    """(top-1 accuracy in %, mean cross-entropy) of ``model`` on uint8 ``images [N, 3, R, R]`` (eval mode)."""
    from edgenas.data.views import normalize_batch

    if len(images) == 0:
        return float("nan"), float("nan")
    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for start in range(0, len(images), EVAL_BATCH):
        x = normalize_batch(images[start:start + EVAL_BATCH], mean, std).to(device, memory_format=memory_format)
        y = labels[start:start + EVAL_BATCH].to(device)
        logits = model(x)
        loss += float(F.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    model.train(was_training)
    return 100.0 * correct / len(images), loss / len(images)


class Finetuner:
    """State and loop of one fine-tuning; :func:`run_finetune` drives it.

    Args:
        data: the protocol's data already in memory (``edgenas evaluate`` shares one
            load among its jobs); loaded from the config when None.
    """

    def __init__(self, cfg: FinetuneConfig, console=None, data=None,
                 on_step: Callable[[int], None] | None = None) -> None:
        from rich.console import Console

        self.cfg = cfg
        self.pseudo = None  # (uint8 images [M, 3, R, R], soft labels [M, K]): set for a self-training student
        self.console = console or Console(stderr=True)
        self.data = data
        self.on_step = on_step
        self.out = Path(cfg.out)
        self.ckpt_path = self.out / "finetune.ckpt"

    # --- set-up -----------------------------------------------------------------------
    def prepare(self) -> None:
        from edgenas.data.splits import stratified_count
        from edgenas.space.registry import load_spec
        from edgenas.train.candidates import is_searched, load_candidate
        from edgenas.train.data import labelled_split, load_protocol_data, only_classes

        from edgenas.distributed import setup
        from edgenas.accelerator import check_accelerator_options

        cfg = self.cfg
        self.world = setup(cfg.device)
        self.device = self.world.device
        check_accelerator_options(cfg, self.device)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        searched = is_searched(cfg.model)
        if searched and not Path(cfg.model).exists():
            raise ConfigError(f"{cfg.model} does not exist")
        resolution = cfg.resolution or (load_spec(cfg.model).resolution if searched else 32)
        data = self.data = self.data or load_protocol_data(cfg.data, cfg.data_root, resolution, cfg.level,
                                                           cfg.synthetic_size)
        if data.pool.resolution != resolution:
            raise ConfigError(f"the data is at {data.pool.resolution} px, the model at {resolution} px")
        self.pool = only_classes(data.pool, cfg.class_subset)
        self.holdout = only_classes(data.holdout, cfg.class_subset)
        self.mean, self.std = data.mean, data.std
        self.fit_idx, self.select_idx = labelled_split(self.pool.labels, cfg.fraction, cfg.samples,
                                                       cfg.select_fraction, cfg.seed)
        self.eval_idx = torch.arange(len(self.holdout))
        if cfg.eval_samples is not None and cfg.eval_samples < len(self.holdout):
            self.eval_idx = stratified_count(self.holdout.labels, cfg.eval_samples, 0)
        # a linear probe trains no backbone weight: their norms do not matter, keep them as they are
        self.resets_norms = cfg.reset_norms and not cfg.linear_probe
        pretrained = None
        if searched and cfg.init == "pretrained":
            from edgenas.train.pretrain import ensure_pretrained

            pretrained = ensure_pretrained(cfg.model, cfg.device, cfg.threads, cfg.progress, self.console,
                                           trust_plugins=cfg.trust_plugins)
        self.candidate = load_candidate(cfg.model, cfg.init, len(self.pool.classes), resolution, cfg.seed, pretrained,
                                        self.resets_norms)
        self.resolution = resolution
        # NHWC: faster for depthwise and 1x1 convs on oneDNN and cuDNN (benchmarks/search_throughput.py measures it)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.sync_bn:
            from edgenas.distributed import sync_batch_norm

            self.candidate.model = sync_batch_norm(self.candidate.model, self.device)
        self.model = self.candidate.model.to(self.device, memory_format=self.memory_format)
        from edgenas.train.candidates import classifier_of

        self.head_name, head = classifier_of(self.model)
        in_head = {id(p) for p in head.parameters()}
        self.backbone_params = [p for p in self.model.parameters() if id(p) not in in_head]
        if cfg.linear_probe:
            for p in self.model.parameters():
                p.requires_grad_(False)
            for p in head.parameters():
                p.requires_grad_(True)
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        # no weight decay on biases and normalisation parameters (1-d tensors), as in most CIFAR recipes
        groups = [{"params": [p for n, p in trainable if p.ndim > 1], "weight_decay": cfg.weight_decay},
                  {"params": [p for n, p in trainable if p.ndim <= 1], "weight_decay": 0.0}]
        self.optimizer = torch.optim.SGD([g for g in groups if g["params"]], lr=cfg.lr, momentum=cfg.momentum,
                                         nesterov=cfg.momentum > 0)
        self.batch = min(cfg.batch_size, len(self.fit_idx))
        if self.batch % self.world.size:
            raise ConfigError(f"the global batch of {self.batch} does not divide among {self.world.size} processes")
        self.steps_per_epoch = max(1, len(self.fit_idx) // self.batch)
        self.forward = self.model  # what each rank runs: DDP averages the gradients of its shards
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # a few labels make short epochs: --min-steps keeps the number of steps of a larger labelled set
        self.epochs = max(cfg.epochs, -(-cfg.min_steps // self.steps_per_epoch))
        self.total_steps = self.steps_per_epoch * self.epochs
        warmup_epochs = cfg.warmup_epochs if cfg.warmup_epochs is not None else (self.epochs - cfg.probe_epochs) // 4
        self.warmup_steps = self.steps_per_epoch * warmup_epochs
        self.average = None
        if cfg.ema > 0:
            from edgenas.train.ema import WeightAverage

            self.average = WeightAverage(self.model, cfg.ema)

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is evaluated, selected and saved: the weight average with ``--ema``, else the network."""
        return self.average.model if self.average is not None else self.model

    def _probing(self, epoch: int) -> bool:
        """Whether ``epoch`` (0-based) trains the classifier alone (``--linear-probe``, ``--probe-epochs``)."""
        return self.cfg.linear_probe or epoch < self.cfg.probe_epochs

    def _train_mode(self, epoch: int) -> None:
        if self._probing(epoch):  # the backbone keeps its weights and batch-norm statistics
            self.model.eval()
            self.model.get_submodule(self.head_name).train()
        else:
            self.model.train()
        if self.cfg.probe_epochs and not self.world.distributed:
            # no backward through a frozen backbone (DDP needs the same trainable set throughout:
            # there the backbone's gradients are dropped after the backward instead)
            for p in self.backbone_params:
                p.requires_grad_(not self._probing(epoch))

    def _lr(self, global_step: int) -> float:
        """The step's learning rate: constant while probing, then warm-up and cosine over the steps left."""
        probe_steps = self.steps_per_epoch * self.cfg.probe_epochs
        if global_step < probe_steps:
            return self.cfg.lr
        return schedule_lr(self.cfg.schedule, global_step - probe_steps, self.total_steps - probe_steps,
                           self.cfg.lr, self.cfg.lr_min, self.warmup_steps)

    def _augment(self, images: torch.Tensor, seed: int, jitter: float = 0.0) -> torch.Tensor:
        """Normalised float32 images: (colour ``jitter``,) crop, flip and cutout with ``--augment``; else plain."""
        from edgenas.data.views import normalize_batch
        from edgenas.train.augment import colour_jitter, crop_flip, cutout

        if not self.cfg.augment:
            return normalize_batch(images, self.mean, self.std)
        if jitter > 0:
            images = colour_jitter(images, jitter, torch.Generator().manual_seed(seed + 2))
        g = torch.Generator().manual_seed(seed)
        x = crop_flip(images, g, self.mean, self.std)
        return cutout(x, int(round(self.cfg.cutout * images.shape[-1])), g)

    def _batch(self, idx: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of the global batch ``idx`` (augmented whole, as one process would): (x, targets).

        Targets are labels; for a self-training student, ``labelled_share`` of the batch comes from the
        labelled images (its first rows of ``idx``) and the rest from the pseudo-labelled ones, all jittered by
        ``--student-jitter``; targets are distributions (the labels one-hot, smoothed by ``--label-smoothing``).
        """
        if self.pseudo is None:
            x = self._augment(self.pool.images[idx], seed)
            x, y = self.world.shard(x), self.world.shard(self.pool.labels[idx])
            return x.to(self.device, memory_format=self.memory_format, non_blocking=True), y.to(self.device)
        images, soft = self.pseudo
        n_lab = max(1, int(round(self.batch * self.cfg.labelled_share)))
        g = torch.Generator().manual_seed(seed + 1)
        rows = torch.randint(0, len(images), (self.batch - n_lab,), generator=g)
        k = soft.shape[1]
        eps = self.cfg.label_smoothing
        hard = F.one_hot(self.pool.labels[idx[:n_lab]], k).float() * (1 - eps) + eps / k
        x = self._augment(torch.cat([self.pool.images[idx[:n_lab]], images[rows]]), seed, self.cfg.student_jitter)
        t = torch.cat([hard, soft[rows]])
        x, t = self.world.shard(x), self.world.shard(t)
        return x.to(self.device, memory_format=self.memory_format, non_blocking=True), t.to(self.device)

    # --- checkpoints ------------------------------------------------------------------
    def save_checkpoint(self, state: dict[str, Any]) -> None:
        if not self.world.main:
            return
        atomic_torch_save({"version": CKPT_VERSION, "config": self.cfg.identity(), **state,
                           "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                           "average": None if self.average is None else self.average.state_dict()},
                          self.ckpt_path)

    def load_checkpoint(self) -> dict[str, Any] | None:
        from edgenas.rundir import load_checkpoint

        return load_checkpoint(self.ckpt_path, CKPT_VERSION, self.cfg.identity(), "a fine-tuning")

    # --- the loop ---------------------------------------------------------------------
    def train(self) -> tuple[dict[str, Any], bool]:
        """Run (or resume) the epochs; returns (the final position and best epoch, resumed)."""
        cfg = self.cfg
        ckpt = self.load_checkpoint()
        state = {"epoch": 0, "step": 0, "global_step": 0, "elapsed_s": 0.0, "cpu_s": 0.0,
                 "best_select_acc": -1.0, "best_epoch": None, "best_state": None, "done": False}
        resumed = ckpt is not None
        if ckpt is not None:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
            if self.average is not None and ckpt.get("average") is not None:
                self.average.load_state_dict(ckpt["average"])
            state.update({k: ckpt[k] for k in state})
            path = self.out / "metrics.jsonl"
            rewrite_jsonl(path, [r for r in read_jsonl(path) if r.get("global_step", 0) <= state["global_step"]])
            if state["done"]:
                return state, True
            self.console.print(f"resuming {self.out} at epoch {state['epoch'] + 1}, step {state['step']}")
        wall0, cpu0 = time.perf_counter() - state["elapsed_s"], time.process_time() - state["cpu_s"]

        def clocks() -> dict[str, float]:
            return {"elapsed_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0}

        label = f"{self.candidate.name}/{cfg.init}" if self.candidate.kind == "searched" else self.candidate.name
        with ProgressBar("finetune", self.total_steps, state["global_step"], f"epoch {state['epoch'] + 1}/{self.epochs}",
                         self.console, enabled=cfg.progress and self.world.main,
                         subtitle=f"{label} {cfg.labels_label}") as progress:
            for epoch in range(state["epoch"], self.epochs):
                self._train_mode(epoch)
                probing = self._probing(epoch)
                g = torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 7))
                order = self.fit_idx[torch.randperm(len(self.fit_idx), generator=g)]
                first = state["step"] if epoch == state["epoch"] else 0
                seen, loss_sum, correct = 0, 0.0, 0
                progress.update(description=f"epoch {epoch + 1}/{self.epochs}")
                for step in range(first, self.steps_per_epoch):
                    lr = self._lr(state["global_step"])
                    for group in self.optimizer.param_groups:
                        group["lr"] = lr
                    idx = order[step * self.batch:(step + 1) * self.batch]
                    x, y = self._batch(idx, derive_seed(cfg.seed, epoch, step, 8))
                    with autocast(cfg, self.device):
                        logits = self.forward(x)
                    if y.dtype.is_floating_point:  # distributions: a self-training student
                        loss = F.cross_entropy(logits.float(), y)
                        y = y.argmax(1)
                    else:
                        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if probing:  # a gradient of None: SGD changes neither the weight nor its momentum
                        for p in self.backbone_params:
                            p.grad = None
                    self.optimizer.step()
                    if self.average is not None:
                        self.average.update(self.model)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise EdgenasError(f"the loss diverged at step {state['global_step']} (lr {lr:.4g}); "
                                           "lower --lr")
                    seen += len(y)
                    loss_sum += value * len(y)
                    correct += int((logits.detach().argmax(1) == y).sum())
                    state["global_step"] += 1
                    state["step"] = step + 1
                    progress.update(1, info=f"loss {value:6.3f}")
                    if state["global_step"] % cfg.checkpoint_every == 0 and step + 1 < self.steps_per_epoch:
                        self.save_checkpoint({**state, **clocks()})
                    if self.on_step is not None:
                        self.on_step(state["global_step"])
                select_acc, select_loss = evaluate_accuracy(self.eval_model, self.pool.images[self.select_idx],
                                                            self.pool.labels[self.select_idx], self.mean, self.std,
                                                            self.device, self.memory_format)
                if len(self.select_idx) and select_acc > state["best_select_acc"]:
                    state.update(best_select_acc=select_acc, best_epoch=epoch + 1,
                                 best_state={k: v.detach().cpu().clone()
                                             for k, v in self.eval_model.state_dict().items()})
                state.update(epoch=epoch + 1, step=0)
                if self.world.distributed:  # the epoch's training figures over every rank's shard
                    totals = torch.tensor([seen, loss_sum, correct], dtype=torch.float64)
                    torch.distributed.all_reduce(totals)
                    seen, loss_sum, correct = int(totals[0]), float(totals[1]), int(totals[2])
                if self.world.main:
                    append_jsonl(self.out / "metrics.jsonl", {
                        "event": "epoch", "epoch": epoch + 1, "global_step": state["global_step"], "lr": lr,
                        # a resumed epoch counts only the steps after the resume
                        "train_loss": loss_sum / seen if seen else None,
                        "train_acc": 100.0 * correct / seen if seen else None,
                        "select_acc": None if not len(self.select_idx) else select_acc,
                        "select_loss": None if not len(self.select_idx) else select_loss, **clocks()})
                self.save_checkpoint({**state, **clocks()})
        state.update(clocks())
        return state, resumed

    # --- result -----------------------------------------------------------------------
    def finish(self, state: dict[str, Any], resumed: bool) -> FinetuneResult:
        import dataclasses

        cfg = self.cfg
        h_images, h_labels = self.holdout.images[self.eval_idx], self.holdout.labels[self.eval_idx]
        final_acc, final_loss = evaluate_accuracy(self.eval_model, h_images, h_labels, self.mean, self.std,
                                                  self.device, self.memory_format)
        final_state = {k: v.detach().cpu() for k, v in self.eval_model.state_dict().items()}
        best_acc, best_epoch = final_acc, self.epochs
        if state["best_state"] is not None and state["best_epoch"] != self.epochs:
            best_model = copy.deepcopy(self.eval_model)
            best_model.load_state_dict(state["best_state"])
            best_acc, _ = evaluate_accuracy(best_model, h_images, h_labels, self.mean, self.std, self.device,
                                            self.memory_format)
            best_epoch = state["best_epoch"]
        elif state["best_epoch"] is not None:
            best_epoch = state["best_epoch"]
        if self.world.main:
            atomic_torch_save(final_state, self.out / "weights.pt")
            atomic_torch_save(state["best_state"] or final_state, self.out / "best.pt")
        classes = list(self.pool.classes)
        if self.candidate.spec is not None and self.world.main:
            spec = dataclasses.replace(self.candidate.spec, extra=tuple(sorted(
                {**dict(self.candidate.spec.extra), "classes": ",".join(classes),
                 "mean": ",".join(f"{m:.5f}" for m in self.mean),
                 "std": ",".join(f"{s:.5f}" for s in self.std)}.items())))
            spec.save(self.out / "arch.json")
        c = self.candidate
        result = {
            "model": c.name, "kind": c.kind, "init": c.init, "source": cfg.model, "init_sha256": c.weights_sha256,
            "reset_norms": self.resets_norms and c.init in ("preserved", "pretrained"),
            "params": c.params, "macs": c.macs,
            "resolution": self.resolution, "data": self.pool.name, "classes": classes,
            "class_subset": None if cfg.class_subset is None else list(cfg.class_subset),
            "fraction": cfg.fraction, "samples": cfg.samples, "labels": cfg.labels_label,
            "n_pool": len(self.pool), "n_labelled": len(self.fit_idx) + len(self.select_idx),
            "n_fit": len(self.fit_idx), "n_select": len(self.select_idx), "n_eval": len(self.eval_idx),
            "linear_probe": cfg.linear_probe, "probe_epochs": cfg.probe_epochs, "epochs": self.epochs,
            "min_steps": cfg.min_steps,
            "steps": self.total_steps, "seed": cfg.seed, "lr": cfg.lr, "schedule": cfg.schedule, "ema": cfg.ema,
            "cutout": cfg.cutout, "label_smoothing": cfg.label_smoothing, "amp": amp_of(cfg, self.device),
            "unlabelled": False,
            "final_acc": round(final_acc, 3), "final_loss": round(final_loss, 5),
            "best_acc": round(best_acc, 3), "best_epoch": best_epoch,
            "best_select_acc": None if state["best_epoch"] is None else round(state["best_select_acc"], 3),
            "elapsed_s": round(state["elapsed_s"], 2), "cpu_s": round(state["cpu_s"], 2),
            "device": str(self.device), "processes": self.world.size, "threads": torch.get_num_threads(),
            "torch": torch.__version__, "mean": list(self.mean), "std": list(self.std),
        }
        if self.world.main:
            atomic_write_text(self.out / "result.json", json.dumps(result, indent=2) + "\n")
        self.save_checkpoint({**state, "done": True})
        self.world.barrier()
        return FinetuneResult(self.out, result, resumed)


def stale_init(result: dict[str, Any], model: str, init: str) -> Path | None:
    """The weights file a recorded fine-tuning started from, when it holds other weights now (else None).

    Records written before the hash was kept (no ``init_sha256``) count as current.
    """
    from edgenas.train.candidates import init_sha256, init_weights, is_stale

    return init_weights(model, init) if is_stale(result.get("init_sha256"), init_sha256(model, init)) else None


def run_finetune(cfg: FinetuneConfig, console=None, data=None,
                 on_step: Callable[[int], None] | None = None) -> FinetuneResult:
    """Run (or resume, or report an already finished) fine-tuning into ``cfg.out``.

    Raises:
        ConfigError, DataError, CheckpointError, UnknownNameError: bad options, data
            or weights, or a directory holding another fine-tuning.
    """
    if not isinstance(cfg, FinetuneConfig):
        raise ConfigError("run_finetune takes a FinetuneConfig")
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    from edgenas.train.selftrain import DURABLE, self_train

    durable = ("finetune.ckpt", *DURABLE)
    with job_output(out, "fine-tuning", durable=lambda: any((out / name).exists() for name in durable)):
        tuner = Finetuner(cfg, console, data, on_step)
        ckpt = tuner.load_checkpoint()
        if ckpt is not None and ckpt.get("done") and (out / "result.json").is_file():
            result = read_json(out / "result.json", "fine-tuning result")
            stale = stale_init(result, cfg.model, cfg.init)
            if stale:
                raise CheckpointError(f"{out} was fine-tuned from other weights than {stale} holds now (refined "
                                      "since?); use another --out")
            return FinetuneResult(out, result, True)
        if cfg.unlabelled:
            result, resumed = self_train(tuner, lambda teacher: run_finetune(teacher, console, tuner.data, on_step))
            return FinetuneResult(out, result, resumed)
        tuner.prepare()
        if tuner.world.main:
            write_config(cfg, out)
        tuner.world.barrier()
        state, resumed = tuner.train()
        return tuner.finish(state, resumed)
