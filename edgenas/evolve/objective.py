"""The self-supervised objective of the evolution strategy, and the learner it trains.

:class:`SearchModel` is the evolving network (``net``, an ``EvolvedNet``) with
the heads its objective needs: the network's own projector (Barlow Twins,
NT-Xent), a DINO head, a rotation head. :class:`Learner` holds the model, the
DINO teacher (an EMA copy of the same shape), the optimiser and the DINO
centre, and takes training steps; a mutation turns a learner into a larger
one that computes the same function (:meth:`Learner.mutated`), optimiser
state included.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgenas.evolve.importance import l1_on_hidden_scales
from edgenas.evolve.mutations import Mutation, apply_mutation, carry_optimizer_state
from edgenas.space.evolved import EvolvedSpec

__all__ = ["Learner", "SearchModel", "Step"]


class SearchModel(nn.Module):
    """``net`` (the evolving network) and the heads of the SSL objective, all reading ``net.features``."""

    def __init__(self, spec: EvolvedSpec, parts: dict[str, float], dino_out_dim: int = 1024) -> None:
        from edgenas.models import build
        from edgenas.ssl import DINOHead, RotationHead

        super().__init__()
        self.net = build(spec)
        self.dino = DINOHead(spec.feature_dim, dino_out_dim) if "dino" in parts else None
        self.rotation = RotationHead(spec.feature_dim) if "rotation" in parts else None

    def feature_consumers(self) -> list[str]:
        """Weight keys of the linear layers that read the pooled features (they follow a widened last group)."""
        keys = ["net.classifier.weight"] if self.net.classifier is not None else []
        if self.net.projector is not None:
            keys.append("net.projector.0.weight")
        if self.dino is not None:
            keys.append("dino.mlp.0.weight")
        if self.rotation is not None:
            keys.append("rotation.net.0.weight")
        return keys


@dataclass
class Step:
    """The losses of one training step (``parts``: each objective before its weight)."""

    total: float
    parts: dict[str, float]


@contextmanager
def frozen_norm_statistics(model: nn.Module):
    """Batch norms use the batch's statistics (train mode) but leave their running statistics alone."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


class Learner:
    """A model in training: its optimiser, its DINO teacher and centre, the weighted SSL objective.

    Args:
        cfg: the search config (``ssl``, weights, temperatures, ``lr``, ...).
        spec: the network to build (random initialisation, seeded by the caller).
    """

    def __init__(self, cfg, spec: EvolvedSpec, device: torch.device) -> None:
        from edgenas.ssl import DINOLoss, two_view_loss

        self.cfg, self.device = cfg, device
        self.parts = cfg.ssl_parts
        self.model = SearchModel(spec, self.parts, cfg.dino_out_dim).to(device, memory_format=torch.channels_last)
        two_view = [p for p in self.parts if p in ("barlow", "ntxent")]
        self.two_view = {p: two_view_loss(p, cfg) for p in two_view}
        self.teacher: SearchModel | None = None
        self.dino_loss = None
        if "dino" in self.parts:
            self.teacher = copy.deepcopy(self.model).requires_grad_(False)
            self.dino_loss = DINOLoss(cfg.dino_out_dim, cfg.dino_student_temp, cfg.dino_teacher_temp).to(device)
        self.optimizer = self._optimizer()

    @property
    def spec(self) -> EvolvedSpec:
        return self.model.net.spec

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr, momentum=self.cfg.momentum,
                               weight_decay=self.cfg.weight_decay)

    # --- the objective ------------------------------------------------------------------
    def loss(self, crops: list[torch.Tensor], rotation: tuple[torch.Tensor, torch.Tensor] | None
             ) -> tuple[torch.Tensor, dict[str, float]]:
        """The weighted SSL loss of one batch of views (2 global crops first) and its parts."""
        from edgenas.ssl import rotation_loss

        net = self.model.net
        g = torch.cat(crops[:2])
        features = net.features(g)
        parts: dict[str, torch.Tensor] = {}
        for name, criterion in self.two_view.items():
            z1, z2 = net.projector(features).chunk(2)
            parts[name] = criterion(z1, z2)
        if self.dino_loss is not None:
            student = list(self.model.dino(features).chunk(2))
            if len(crops) > 2:
                student += list(self.model.dino(net.features(torch.cat(crops[2:]))).chunk(len(crops) - 2))
            with torch.no_grad():
                teacher = list(self.teacher.dino(self.teacher.net.features(g)).chunk(2))
            parts["dino"] = self.dino_loss(student, teacher)
        if rotation is not None:
            x, k = rotation
            parts["rotation"] = rotation_loss(self.model.rotation(net.features(x)), k)
        total = sum(self.parts[name] * value for name, value in parts.items())
        if self.cfg.sparse_routing and self.cfg.sparsity > 0:
            total = total + self.cfg.sparsity * l1_on_hidden_scales(net)
        return total, {k: float(v.detach()) for k, v in parts.items()}

    def step(self, crops, rotation, lr: float, teacher_momentum: float, tracker=None) -> Step:
        """One optimiser step (and the teacher's EMA update)."""
        from edgenas.ssl.dino import ema_update_

        self.model.train()
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total, parts = self.loss(crops, rotation)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if tracker is not None:
            tracker.update(self.model.net)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        if self.teacher is not None:
            ema_update_(self.teacher, self.model, teacher_momentum)
        return Step(float(total.detach()), parts)

    @torch.no_grad()
    def fitness_loss(self, crops, rotation) -> float:
        """The weighted SSL loss on a fixed batch, batch statistics, nothing updated (not the DINO centre either)."""
        self.model.train()
        saved = None if self.dino_loss is None else self.dino_loss.center.clone()
        with frozen_norm_statistics(self.model):
            total, parts = self.loss(crops, rotation)
        if saved is not None:
            self.dino_loss.center.copy_(saved)
        return float(sum(self.parts[k] * v for k, v in parts.items()))

    # --- mutation -----------------------------------------------------------------------
    def mutated(self, mutation: Mutation, seed: int) -> "Learner":
        """A new learner whose network (and teacher) carry ``mutation``; same function, optimiser state carried."""
        new = copy.copy(self)
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        result = apply_mutation(self.spec, state, mutation, np.random.default_rng(seed),
                                self.model.feature_consumers(), seed=seed)
        new.model = SearchModel(result.spec, self.parts, self.cfg.dino_out_dim)
        new.model.load_state_dict(result.state)
        new.model.to(self.device, memory_format=torch.channels_last)
        if self.teacher is not None:
            t_state = {k: v.detach().cpu() for k, v in self.teacher.state_dict().items()}
            t_result = apply_mutation(self.spec, t_state, mutation, np.random.default_rng(seed),
                                      self.model.feature_consumers(), seed=seed)
            new.teacher = SearchModel(result.spec, self.parts, self.cfg.dino_out_dim)
            new.teacher.load_state_dict(t_result.state)
            new.teacher.to(self.device, memory_format=torch.channels_last).requires_grad_(False)
            new.dino_loss = copy.deepcopy(self.dino_loss)
        new.optimizer = new._optimizer()
        names = {id(p): k for k, p in self.model.named_parameters()}
        carry_optimizer_state(self.optimizer, names, new.optimizer, dict(new.model.named_parameters()),
                              result.transforms)
        return new

    def clone(self) -> "Learner":
        """An independent copy (for a trial that may be thrown away)."""
        new = copy.copy(self)
        new.model = copy.deepcopy(self.model)
        new.teacher = copy.deepcopy(self.teacher)
        new.dino_loss = copy.deepcopy(self.dino_loss)
        new.optimizer = new._optimizer()
        names = {id(p): k for k, p in self.model.named_parameters()}
        from edgenas.evolve.mutations import Transform

        carry_optimizer_state(self.optimizer, names, new.optimizer, dict(new.model.named_parameters()),
                              {k: Transform((), k) for k, _ in new.model.named_parameters()})
        return new

    # --- checkpoints --------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"spec": self.spec.to_dict(), "model": self.model.state_dict(),
                "teacher": None if self.teacher is None else self.teacher.state_dict(),
                "dino_loss": None if self.dino_loss is None else self.dino_loss.state_dict(),
                "optimizer": self.optimizer.state_dict()}

    @classmethod
    def from_state(cls, cfg, state: dict, device: torch.device) -> "Learner":
        learner = cls(cfg, EvolvedSpec.from_dict(state["spec"]), device)
        learner.model.load_state_dict(state["model"])
        if learner.teacher is not None:
            learner.teacher.load_state_dict(state["teacher"])
            learner.dino_loss.load_state_dict(state["dino_loss"])
        learner.optimizer.load_state_dict(state["optimizer"])
        return learner
