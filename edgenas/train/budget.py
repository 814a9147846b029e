"""``edgenas finetune --time-budget MINUTES``: as many epochs as fit the user's minutes on this machine.

The plan is measured, not guessed: the fine-tuning's own data, network, batch,
augmentation and precision are set up (:meth:`Finetuner.prepare`), a few
training steps are timed after a warm-up, and so are a checkpoint and an
evaluation of the selection split (each once an epoch: few labels make many
short epochs), one of the hold-out (once per stage) and, with
``--unlabelled``, the teacher's labelling of the pool. Then::

    epochs = floor((budget * SAFETY - spent - fixed) / (stages * per_epoch))

``spent`` is the time from the start of the plan (after the imports) to its
end (loading the data, the timing itself), ``stages`` is ``--rounds`` (the
students, 1 by default) plus, with self-training, the teacher's share
(``--teacher-epochs`` / ``--epochs``; 1 by default, teacher and student as
many epochs each), ``fixed`` holds every labelling of the pool, and the plan
replaces ``--epochs`` and sets ``--min-steps 0``. A budget too small for one epoch is refused. A fine-tuning
directory that already holds a config keeps its plan, so resuming finishes
the same schedule.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import torch

from edgenas.errors import ConfigError

__all__ = ["SAFETY", "plan_time_budget"]

SAFETY = 0.92  # what the plan may use of the budget: the timing's error, checkpoints, the final report
TIMED_STEPS, WARMUP_STEPS = 8, 3


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_seconds(tuner) -> float:
    """Seconds per training step of ``tuner`` (its batch, augmentation, precision), after a warm-up."""
    import torch.nn.functional as F

    from edgenas.accelerator import autocast

    cfg = tuner.cfg
    tuner.model.train()
    idx = tuner.fit_idx[:tuner.batch]
    start = 0.0
    for i in range(WARMUP_STEPS + TIMED_STEPS):
        if i == WARMUP_STEPS:
            _sync(tuner.device)
            start = time.perf_counter()
        x, y = tuner._batch(idx, i)
        with autocast(cfg, tuner.device):
            logits = tuner.forward(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=cfg.label_smoothing)
        tuner.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        tuner.optimizer.step()
        if tuner.average is not None:
            tuner.average.update(tuner.model)
    _sync(tuner.device)
    return (time.perf_counter() - start) / TIMED_STEPS


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _saved_plan(out: Path) -> tuple[int, int, int | None] | None:
    """(epochs, min_steps, teacher_epochs) of a fine-tuning already begun in ``out`` (its config.yaml), else None."""
    import yaml

    path = out / "config.yaml"
    if not path.is_file():
        return None
    try:
        saved = yaml.safe_load(path.read_text()) or {}
        teacher = saved.get("teacher_epochs")
        return int(saved["epochs"]), int(saved.get("min_steps", 0)), None if teacher is None else int(teacher)
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return None


def plan_time_budget(cfg, minutes: float, console=None, data=None):
    """(``cfg`` with the epochs that fit ``minutes`` of wall time, one line saying the plan).

    Raises:
        ConfigError: a budget that is not a positive number, too small for one epoch, or a torchrun
            (each process would time itself and plan its own schedule).
    """
    import os

    from edgenas.train.finetune import Finetuner, evaluate_accuracy

    began = time.perf_counter()
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not math.isfinite(minutes) \
            or minutes <= 0:
        raise ConfigError(f"--time-budget takes minutes > 0, got {minutes!r}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--time-budget plans for one process; under torchrun give --epochs")
    saved = _saved_plan(Path(cfg.out))
    if saved is not None:
        epochs, min_steps, teacher_epochs = saved
        return (cfg.replace(epochs=epochs, min_steps=min_steps, teacher_epochs=teacher_epochs),
                f"--time-budget: {cfg.out} was begun with {epochs} epochs; resuming that plan")
    with tempfile.TemporaryDirectory(prefix="edgenas-plan-") as scratch:  # the probe's checkpoints
        tuner = Finetuner(cfg.labels_alone(out=scratch), console, data)
        tuner.prepare()
        step_s = _step_seconds(tuner)
        best = {k: v.detach().cpu().clone() for k, v in tuner.eval_model.state_dict().items()}
        state = {"epoch": 1, "step": 0, "global_step": 1, "elapsed_s": 0.0, "cpu_s": 0.0, "best_select_acc": 0.0,
                 "best_epoch": 1, "best_state": best, "done": False}
        ckpt_s = min(_timed(lambda: tuner.save_checkpoint(state)) for _ in range(3))
    model, pool, held = tuner.eval_model, tuner.pool, tuner.holdout
    select_s = _timed(lambda: evaluate_accuracy(model, pool.images[tuner.select_idx], pool.labels[tuner.select_idx],
                                                tuner.mean, tuner.std, tuner.device, tuner.memory_format))
    holdout_s = _timed(lambda: evaluate_accuracy(model, held.images[tuner.eval_idx], held.labels[tuner.eval_idx],
                                                 tuner.mean, tuner.std, tuner.device, tuner.memory_format))
    # the teacher trains teacher_epochs for every epochs of the student: that share of the student's epochs
    share = (cfg.teacher_epochs or cfg.epochs) / cfg.epochs if cfg.unlabelled else 0.0
    stages = cfg.rounds + share  # and each of --rounds students trains --epochs
    label_s = 0.0
    if cfg.unlabelled:  # the teacher labels every unlabelled image, and its flip
        from edgenas.train.selftrain import pseudo_labels

        n = len(pool) - len(tuner.fit_idx) - len(tuner.select_idx)
        sample = pool.images[:min(500, len(pool))]
        label_s = _timed(lambda: pseudo_labels(model, sample, tuner.mean, tuner.std, tuner.device, cfg)) \
            * n / max(1, len(sample)) * cfg.rounds
    # every epoch ends with an evaluation of the selection split and a checkpoint, and checkpoints
    # every --checkpoint-every steps within it
    checkpoints = 1 + tuner.steps_per_epoch // cfg.checkpoint_every
    per_epoch = tuner.steps_per_epoch * step_s + select_s + checkpoints * ckpt_s
    spent = time.perf_counter() - began
    fixed = (1 + cfg.rounds if cfg.unlabelled else 1) * holdout_s + label_s
    left = minutes * 60 * SAFETY - spent - fixed
    epochs = int(left // (stages * per_epoch)) if left > 0 else 0
    who = "student" if cfg.rounds == 1 else f"each of {cfg.rounds} students"
    both = f" (teacher and {who})" if cfg.unlabelled else ""
    if epochs < 1:
        need = (spent + fixed + stages * per_epoch) / SAFETY / 60
        raise ConfigError(f"--time-budget {minutes:g} min is too small for one epoch here: one epoch of "
                          f"{tuner.steps_per_epoch} steps{both} and its evaluations need about {need:.1f} min")
    teacher = max(1, round(epochs * share)) if cfg.unlabelled and cfg.teacher_epochs else None
    if teacher is not None:
        both = f" for {'the student' if cfg.rounds == 1 else who}, {teacher} for the teacher"
    trained = cfg.rounds * epochs + (epochs * share if teacher is None else teacher)
    planned = (spent + fixed + trained * per_epoch) / 60
    return (cfg.replace(epochs=epochs, min_steps=0, teacher_epochs=teacher),
            f"--time-budget {minutes:g} min: {epochs} epochs of {tuner.steps_per_epoch} "
            f"step{'s' if tuner.steps_per_epoch > 1 else ''}{both}, timed at "
            f"{1e3 * step_s:.0f} ms a step here; planned {planned:.1f} min with the set-up")
