"""The one learning-rate schedule of every training loop: linear warm-up, then cosine.

Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017
(one cycle, no restart); the warm-up is Goyal et al., 2017.
"""

from __future__ import annotations

import math

__all__ = ["cosine_lr"]


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
