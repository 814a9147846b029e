"""DINO: self-distillation with no labels (Caron et al., ICCV 2021, arXiv:2104.14294).

A student network is trained to match, on every crop of an image, the output
distribution a teacher gives on the *other* global crops. The teacher is an
exponential moving average of the student (no gradient); its outputs are
centred (a running mean is subtracted) and sharpened (a low temperature), which
together keep the distributions from collapsing. Multi-crop: 2 global crops
at full resolution seen by both, and small local crops seen by the student only.

Pure functions: :func:`dino_loss`, :func:`updated_center`, :func:`cosine_momentum`,
:func:`ema_update_`; :class:`DINOHead` is the projection head (MLP, L2-normalised
bottleneck, weight-normalised prototypes); :class:`DINOLoss` keeps the centre.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from edgenas.errors import ConfigError

__all__ = ["DINOHead", "DINOLoss", "cosine_momentum", "dino_loss", "ema_update_", "updated_center"]


def dino_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], center: torch.Tensor,
              student_temp: float = 0.1, teacher_temp: float = 0.04) -> torch.Tensor:
    """Cross-entropy between the centred, sharpened teacher and the student, over crop pairs.

    Args:
        student: ``[B, K]`` outputs of the student on each crop; the first
            ``len(teacher)`` are the global crops, in the teacher's order.
        teacher: ``[B, K]`` outputs of the teacher on the global crops.
        center: ``[K]`` running mean of the teacher outputs.

    Returns:
        Scalar mean over the pairs (teacher crop i, student crop j), ``j != i``, of
        ``mean_b sum_k -softmax((t_i - c) / tt)_k log softmax(s_j / ts)_k``.

    Raises:
        ValueError: fewer student than teacher crops, shapes that differ, temperatures <= 0.
    """
    if len(student) < len(teacher) or not teacher:
        raise ValueError(f"{len(student)} student crops for {len(teacher)} teacher crops")
    if not (student_temp > 0 and teacher_temp > 0):
        raise ValueError("temperatures must be > 0")
    shape = teacher[0].shape
    if any(t.shape != shape for t in (*student, *teacher)) or center.shape != shape[1:]:
        raise ValueError("every crop's output must be [B, K] and the centre [K]")
    targets = [F.softmax((t.detach() - center) / teacher_temp, dim=-1) for t in teacher]
    log_probs = [F.log_softmax(s / student_temp, dim=-1) for s in student]
    total, pairs = 0.0, 0
    for i, target in enumerate(targets):
        for j, log_prob in enumerate(log_probs):
            if i == j:
                continue  # the same view: nothing to predict
            total = total + (-target * log_prob).sum(-1).mean()
            pairs += 1
    return total / pairs


@torch.no_grad()
def updated_center(center: torch.Tensor, teacher: Sequence[torch.Tensor], momentum: float = 0.9) -> torch.Tensor:
    """``momentum * center + (1 - momentum) * mean`` of the teacher outputs over crops and batch."""
    return momentum * center + (1 - momentum) * torch.cat(list(teacher)).mean(0)


def cosine_momentum(step: int, total: int, base: float = 0.996, final: float = 1.0) -> float:
    """The teacher's EMA momentum: ``base`` at step 0, rising to ``final`` along a half cosine (DINO's schedule)."""
    t = min(max(step, 0), total) / max(total, 1)
    return final - (final - base) * (math.cos(math.pi * t) + 1) / 2


@torch.no_grad()
def ema_update_(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """In place: every teacher parameter ``<- momentum * teacher + (1 - momentum) * student``; buffers copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


class DINOHead(nn.Module):
    """Features ``[B, F]`` -> ``[B, K]`` prototype scores: MLP, L2-normalised bottleneck, normalised prototypes.

    The last layer is DINO's weight-normalised linear layer with its norm fixed
    to 1, i.e. a cosine similarity between the bottleneck and ``K`` prototypes.
    """

    def __init__(self, in_features: int, out_dim: int = 1024, hidden: int = 256, bottleneck: int = 64) -> None:
        super().__init__()
        if min(in_features, out_dim, hidden, bottleneck) < 1:
            raise ConfigError("DINO head sizes must be positive")
        self.mlp = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, bottleneck))
        self.prototypes = nn.Parameter(torch.randn(out_dim, bottleneck) * 0.02)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(features), dim=-1)
        return x @ F.normalize(self.prototypes, dim=-1).T


class DINOLoss(nn.Module):
    """:func:`dino_loss` with the running centre (a buffer, updated on every training call)."""

    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9) -> None:
        super().__init__()
        if not (student_temp > 0 and teacher_temp > 0 and 0 <= center_momentum < 1):
            raise ConfigError("DINO temperatures must be > 0 and the centre momentum in [0, 1)")
        self.student_temp, self.teacher_temp, self.center_momentum = student_temp, teacher_temp, center_momentum
        self.register_buffer("center", torch.zeros(out_dim))

    def forward(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        loss = dino_loss(student, teacher, self.center, self.student_temp, self.teacher_temp)
        if self.training:
            self.center.copy_(updated_center(self.center, teacher, self.center_momentum))
        return loss
