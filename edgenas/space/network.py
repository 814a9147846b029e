"""The searchable network ``DARTSAutoSSL`` and its cell layout.

Stem -> cells (reductions at 1/3 and 2/3 of the depth, as in DARTS) -> global
average pooling -> SSL projection head (Barlow Twins style: Linear-BN-ReLU-Linear).
The architecture weights ``alpha_normal`` / ``alpha_reduce`` (``[E, K]``, E edges,
K candidate ops) are shared by all cells of a kind.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from edgenas.errors import ConfigError
from edgenas.space.cells import SearchCell, num_edges
from edgenas.space.ops import DEFAULT_OPS, OPS
from edgenas.space.spec import reduction_positions  # noqa: F401 - also imported from here


def make_stem(in_channels: int, stem_channels: int) -> nn.Sequential:
    """3x3 stride-1 conv + BN: at 32x32 the input resolution is kept for the first cells."""
    return nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_channels))


def make_projector(in_features: int, dims: Sequence[int]) -> nn.Module:
    """Linear-BN-ReLU blocks, then a final Linear (Zbontar et al. 2021, scaled down)."""
    if not dims:
        return nn.Identity()
    layers: list[nn.Module] = []
    prev = in_features
    for d in dims[:-1]:
        layers += [nn.Linear(prev, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
        prev = d
    layers.append(nn.Linear(prev, dims[-1], bias=False))
    return nn.Sequential(*layers)


class DARTSAutoSSL(nn.Module):
    """The supernet of the cell space, trained self-supervised.

    Args:
        C: channels of each node in the first cells (doubled at every reduction).
        num_cells: number of cells.
        nodes: intermediate nodes per cell (each fed by an edge from every earlier state).
        op_names: candidate ops, names from :data:`edgenas.space.OPS`.
        stem_multiplier: stem width = ``stem_multiplier * C``.
        projector: SSL projection head widths (hidden..., output).
        num_classes: optional linear classifier on the pooled features (0: none).
        in_channels: input image channels.
        recompute: in a forward with gradients, keep only each edge's input and output and run its op again
            in the backward pass (activation checkpointing, the default of ``edgenas search``'s sampled
            supernet): at deployment size 41-46% less peak memory in about the same time on the CPU measured
            (docs/performance.md). The step is the same: the recomputation leaves batch-norm running statistics
            as the first forward set them.

    Shapes: ``forward(x [B, in_channels, R, R]) -> [B, projector[-1]]``;
    ``features(x) -> [B, F]`` with ``F = nodes * C_last``.

    Raises:
        ConfigError: sizes out of range; UnknownNameError: an op is not registered.
    """

    def __init__(self, C: int = 16, num_cells: int = 5, nodes: int = 4,
                 op_names: Sequence[str] = DEFAULT_OPS, stem_multiplier: int = 3,
                 projector: Sequence[int] = (256, 256), num_classes: int = 0, in_channels: int = 3,
                 recompute: bool = False) -> None:
        super().__init__()
        if C <= 0 or C % 2:
            raise ConfigError(f"channels must be a positive even number, got {C}")
        if num_cells < 1 or nodes < 1 or stem_multiplier < 1:
            raise ConfigError("num_cells, nodes and stem_multiplier must be >= 1")
        op_names = tuple(op_names)
        if len(set(op_names)) != len(op_names) or not op_names:
            raise ConfigError(f"ops must be a non-empty list of distinct names, got {list(op_names)}")
        for name in op_names:
            OPS.get(name)  # raises with close matches
        if all(n == "zero" for n in op_names):
            raise ConfigError("the op set needs at least one op other than 'zero'")
        self.C, self.num_cells, self.nodes = C, num_cells, nodes
        self.op_names = op_names
        self.stem_multiplier = stem_multiplier
        self.projector_dims = tuple(projector)
        self.in_channels = in_channels
        self.recompute = recompute
        self.reduction_cells = reduction_positions(num_cells)

        self.stem = make_stem(in_channels, stem_multiplier * C)
        C_pp, C_p, C_cur = stem_multiplier * C, stem_multiplier * C, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(num_cells):
            reduction = i in self.reduction_cells
            if reduction:
                C_cur *= 2
            self.cells.append(SearchCell(op_names, nodes, C_pp, C_p, C_cur, reduction, reduction_prev))
            reduction_prev = reduction
            C_pp, C_p = C_p, nodes * C_cur
        self.feature_dim = C_p
        self.projector = make_projector(C_p, self.projector_dims)
        self.classifier = nn.Linear(C_p, num_classes) if num_classes else None

        E, K = num_edges(nodes), len(op_names)
        # Small random init as in DARTS: near-uniform mixture, symmetry broken.
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(E, K))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(E, K))

    # --- parameter groups for the bilevel optimisation ---------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def named_weight_parameters(self) -> list[tuple[str, nn.Parameter]]:
        return [(n, p) for n, p in self.named_parameters() if not n.startswith("alpha_")]

    def arch_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax over ops of each edge: ``([E, K], [E, K])`` for normal and reduction cells."""
        return self.alpha_normal.softmax(-1), self.alpha_reduce.softmax(-1)

    # --- sampled paths (GDAS, Dong and Yang, CVPR 2019) ------------------------------------
    def sample_paths(self, tau: float, generator: torch.Generator) -> torch.Tensor:
        """One op per edge of every cell, drawn from the alphas with the Gumbel-max trick.

        Returns ``[num_cells, E, K]`` one-hot in value; straight-through, its gradient is that of
        ``softmax((alpha + g) / tau)``, so an architecture step through a sampled path reaches
        every alpha while only the chosen ops run. Each cell draws its own path (cells of a
        kind share their alphas); ``generator`` makes the draw the same on every rank.
        """
        rows = []
        for cell in self.cells:
            alpha = self.alpha_reduce if cell.reduction else self.alpha_normal
            u = torch.rand(alpha.shape, generator=generator).clamp_(1e-9, 1 - 1e-9).to(alpha.device)
            soft = ((alpha - torch.log(-torch.log(u))) / tau).softmax(-1)
            hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
            rows.append(hard - soft.detach() + soft)
        return torch.stack(rows)

    # --- forward -------------------------------------------------------------------------
    def features(self, x: torch.Tensor, paths: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features; with ``paths`` (from :meth:`sample_paths`) each edge runs its sampled op only."""
        w_normal, w_reduce = (None, None) if paths is not None else self.arch_weights()
        s0 = s1 = self.stem(x)
        for c, cell in enumerate(self.cells):
            if paths is not None:
                s0, s1 = s1, cell(s0, s1, paths[c], sampled=True, recompute=self.recompute)
            else:
                s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal, recompute=self.recompute)
        return s1.mean((2, 3))

    def forward(self, x: torch.Tensor, paths: torch.Tensor | None = None) -> torch.Tensor:
        return self.projector(self.features(x, paths))

    def expand_channels(self, width_multiplier: float) -> "DARTSAutoSSL":
        """A wider supernet with the same space and the same alphas (fresh weights).

        ``C`` and the stem scale by ``width_multiplier`` (rounded to an even number);
        used to search narrow and train wide, or to scale a search to a budget.
        """
        if width_multiplier <= 0:
            raise ConfigError(f"width multiplier must be > 0, got {width_multiplier}")
        C = max(2, int(round(self.C * width_multiplier / 2)) * 2)
        wide = DARTSAutoSSL(C, self.num_cells, self.nodes, self.op_names, self.stem_multiplier,
                            self.projector_dims, self.classifier.out_features if self.classifier else 0,
                            self.in_channels, self.recompute)
        with torch.no_grad():
            wide.alpha_normal.copy_(self.alpha_normal)
            wide.alpha_reduce.copy_(self.alpha_reduce)
        return wide
