"""The discrete network of an ArchSpec (the deployable result of a search)."""

from __future__ import annotations

import abc

import torch
from torch import nn

from edgenas.space.cells import DerivedCell
from edgenas.space.network import make_projector, make_stem
from edgenas.space.spec import ArchSpec


class SearchedNet(nn.Module, abc.ABC):
    """What every searched network shares: ``features`` (pooled, ``[B, F]``), a classifier and an SSL projector.

    Subclasses build ``self.projector`` and ``self.classifier`` (:meth:`build_heads`) and define ``features``.
    """

    projector: nn.Module | None
    classifier: nn.Module | None

    @abc.abstractmethod
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, R, R] -> [B, F]``: each space pools its own body."""

    def build_heads(self, feature_dim: int, spec) -> None:
        """``self.projector`` (SSL, ``spec.projector`` widths) and ``self.classifier`` (``spec.num_classes``) on
        ``feature_dim`` pooled features; either is None when the spec has none."""
        self.projector = make_projector(feature_dim, spec.projector) if spec.projector else None
        self.classifier = nn.Linear(feature_dim, spec.num_classes) if spec.num_classes else None

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.projector is None:
            raise RuntimeError("this network has no SSL projector (it was dropped)")
        return self.projector(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        return self.classifier(f) if self.classifier is not None else f

    def deployable(self) -> nn.Module:
        """A copy of this network without its SSL projector (what the exporters freeze)."""
        import copy

        net = copy.deepcopy(self)
        net.projector = None
        return net


class DerivedNet(SearchedNet):
    """Stem -> derived cells -> global average pool -> classifier (and SSL projector).

    Module names mirror :class:`~edgenas.space.network.DARTSAutoSSL`, so the
    supernet's weights of the kept ops load by name (weight preservation).

    Shapes: ``forward(x [B, in_channels, R, R]) -> [B, num_classes]`` (the pooled
    features ``[B, F]`` when ``num_classes == 0``); ``project(x) -> [B, projector[-1]]``.
    """

    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        self.spec = spec
        mult_C = spec.stem_channels
        self.stem = make_stem(spec.in_channels, mult_C)
        C_pp, C_p = mult_C, mult_C
        nodes = spec.nodes
        self.cells = nn.ModuleList()
        reduction_prev = False
        for reduction, C in spec.cell_channels():
            genotype = spec.reduce if reduction else spec.normal
            self.cells.append(DerivedCell(genotype, C_pp, C_p, C, reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, nodes * C
        self.feature_dim = C_p
        self.build_heads(C_p, spec)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1.mean((2, 3))

