"""The learning-rate schedules of every training loop: a linear warm-up, then a cosine or a linear decay.

Cosine: Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017
(one cycle, no restart); the warm-up is Goyal et al., 2017. Linear: the triangular one-cycle
schedule of Smith and Topin (2017), which the fast CIFAR recipes use (a long warm-up, then a
straight line down).
"""

from __future__ import annotations

import math

__all__ = ["SCHEDULES", "cosine_lr", "linear_lr", "schedule_lr"]


def cosine_lr(step: int, total: int, lr: float, lr_min: float = 0.0, warmup: int = 0) -> float:
    """The learning rate of ``step`` (0-based) of ``total``.

    Over the first ``warmup`` steps it rises linearly towards ``lr``, which the
    first step after the warm-up reaches (so even one warm-up step starts below the
    peak); then it follows half a cosine from ``lr`` to ``lr_min`` over the steps
    left, and stays at ``lr_min`` past ``total``.
    """
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    t = (step - warmup) / max(1, total - warmup)
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * min(t, 1.0)))


def linear_lr(step: int, total: int, lr: float, lr_min: float = 0.0, warmup: int = 0) -> float:
    """As :func:`cosine_lr`, but a straight line from ``lr`` down to ``lr_min`` after the warm-up."""
    if step < warmup:
        return lr * (step + 1) / (warmup + 1)
    t = (step - warmup) / max(1, total - warmup)
    return lr_min + (lr - lr_min) * max(0.0, 1.0 - t)


#: schedule name -> function of (step, total, lr, lr_min, warmup)
SCHEDULES = {"cosine": cosine_lr, "linear": linear_lr}


def schedule_lr(name: str, step: int, total: int, lr: float, lr_min: float = 0.0, warmup: int = 0) -> float:
    """The learning rate of ``step`` under the schedule ``name`` (see :data:`SCHEDULES`)."""
    return SCHEDULES[name](step, total, lr, lr_min, warmup)
