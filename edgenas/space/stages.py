"""StageSpec: a macro space of dense conv stages (``arch.json`` of space ``stages-cnn``).

Networks of this space are what trains fast on a CPU at few labels: a few wide,
dense convolutions, most of them after a pooling, with residual pairs. The
network is a chain:

* an optional stem: a 3x3 conv, batch norm, ReLU at the input's resolution;
* stages, each a ``kernel`` x ``kernel`` conv to ``width`` channels, then (with
  ``pool``) a 2x2 max pool, batch norm and ReLU, then ``residual`` residual pairs
  (``x + f(x)``, ``f`` two 3x3 conv-BN-ReLU layers at ``width`` channels);
* global max pooling, a classifier and (optionally) an SSL projector.

The hand-made ``fast_cnn`` baseline is one point of this space (no stem, three
pooled stages of 64, 128 and 144 channels with one residual pair each), and so
are the ResNet-9 of the DAWNBench entries and plain VGG-style stacks; the
search chooses the depth, widths, kernels, residual pairs and pooling under
the budgets. Like :class:`~edgenas.space.spec.ArchSpec`, this module imports
without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from edgenas.errors import ArchSpecError
from edgenas.space.serial import SpecFile, chain_from_dict, chain_to_dict

__all__ = ["STAGES_SPACE", "STAGES_VERSION", "Stage", "StageSpec"]

STAGES_SPACE = "stages-cnn"
STAGES_VERSION = 1
#: the kernels a stage's conv may have
STAGE_KERNELS = (3, 5)
#: the most residual pairs one stage may hold, and the most stages
MAX_RESIDUAL = 4
MAX_STAGES = 12


def _positive_int(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ArchSpecError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Stage:
    """One stage: a ``kernel`` conv to ``width`` channels (then a 2x2 max pool with ``pool``), ``residual`` pairs."""

    width: int
    kernel: int = 3
    pool: bool = True
    residual: int = 1

    def __post_init__(self) -> None:
        _positive_int("stage width", self.width)
        if self.kernel not in STAGE_KERNELS:
            raise ArchSpecError(f"stage kernel must be one of {STAGE_KERNELS}, got {self.kernel!r}")
        if not isinstance(self.pool, bool):
            raise ArchSpecError(f"stage pool must be true or false, got {self.pool!r}")
        if not isinstance(self.residual, int) or isinstance(self.residual, bool) or \
                not 0 <= self.residual <= MAX_RESIDUAL:
            raise ArchSpecError(f"stage residual must be an integer in 0..{MAX_RESIDUAL}, got {self.residual!r}")


@dataclass(frozen=True)
class StageSpec(SpecFile):
    """A network of the stage space.

    Attributes:
        stem_channels: output channels of the 3x3 stem conv (0: no stem, the first stage reads the image).
        stages: the stages in order.
        resolution, in_channels: the input it was searched for (``[B, in_channels, R, R]``).
        num_classes: size of the classifier (0: none).
        projector: hidden and output widths of the SSL projection head (empty: none).
    """

    stem_channels: int
    stages: tuple[Stage, ...]
    resolution: int = 32
    in_channels: int = 3
    num_classes: int = 10
    projector: tuple[int, ...] = ()
    space: str = STAGES_SPACE
    space_version: int = STAGES_VERSION
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        self.check_space(STAGES_SPACE, STAGES_VERSION)
        if not isinstance(self.stem_channels, int) or isinstance(self.stem_channels, bool) or self.stem_channels < 0:
            raise ArchSpecError(f"stem_channels must be an integer >= 0, got {self.stem_channels!r}")
        for name in ("resolution", "in_channels"):
            _positive_int(name, getattr(self, name))
        if not isinstance(self.num_classes, int) or self.num_classes < 0:
            raise ArchSpecError(f"num_classes must be >= 0, got {self.num_classes!r}")
        if not self.stages or len(self.stages) > MAX_STAGES:
            raise ArchSpecError(f"a stage network needs 1..{MAX_STAGES} stages, got {len(self.stages)}")
        size = self.resolution
        for i, stage in enumerate(self.stages):
            if stage.pool:
                if size % 2:
                    raise ArchSpecError(f"stage {i} pools a {size}x{size} map; the resolution must stay even")
                size //= 2

    # --- derived facts -------------------------------------------------------------
    def inputs(self) -> list[int]:
        """Input channels of each stage's first conv."""
        first = self.stem_channels or self.in_channels
        return [first] + [s.width for s in self.stages[:-1]]

    def sizes(self) -> list[int]:
        """Spatial side of each stage's input, then of the last stage's output."""
        out = [self.resolution]
        for s in self.stages:
            out.append(out[-1] // 2 if s.pool else out[-1])
        return out

    @property
    def feature_dim(self) -> int:
        return self.stages[-1].width

    def cost(self) -> tuple[int, int]:
        """(parameters, MACs of one image) of the deployable network, counted as :mod:`edgenas.profiler` counts
        them: conv and linear weights, batch-norm scales and shifts, the classifier's bias; MACs of the convs
        (at their input side, before the pool) and the classifier."""
        params = macs = 0
        size = self.resolution
        if self.stem_channels:
            params += self.in_channels * self.stem_channels * 9 + 2 * self.stem_channels
            macs += self.in_channels * self.stem_channels * 9 * size * size
        for c_in, s in zip(self.inputs(), self.stages):
            params += c_in * s.width * s.kernel ** 2 + 2 * s.width
            macs += c_in * s.width * s.kernel ** 2 * size * size
            size = size // 2 if s.pool else size
            params += s.residual * 2 * (s.width * s.width * 9 + 2 * s.width)
            macs += s.residual * 2 * s.width * s.width * 9 * size * size
        if self.num_classes:
            params += self.feature_dim * self.num_classes + self.num_classes
            macs += self.feature_dim * self.num_classes
        return params, macs

    def scaled(self, factor: float, multiple: int = 8) -> "StageSpec":
        """The same network with every width (and the stem's) times ``factor``, rounded to ``multiple``."""

        def width(c: int) -> int:
            return max(multiple, int(round(c * factor / multiple)) * multiple)

        return replace(self, stem_channels=width(self.stem_channels) if self.stem_channels else 0,
                       stages=tuple(replace(s, width=width(s.width)) for s in self.stages))

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return chain_to_dict(self, "stages")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StageSpec":
        return chain_from_dict(cls, data, "stages", Stage, {"stem_channels", "stages"})

    def describe(self) -> str:
        """One line: ``stem 0 | 64k3p r1 | 128k3p r1 | 144k3p r1``."""
        parts = [f"stem {self.stem_channels}"]
        parts += [f"{s.width}k{s.kernel}{'p' if s.pool else ''} r{s.residual}" for s in self.stages]
        return " | ".join(parts)
