"""EvolvedSpec: a network grown by the evolution strategy, as a value (``arch.json`` of space ``evolved-cnn``).

The network is a plain chain: a 3x3 stem conv, then blocks, then global
pooling, a classifier and (optionally) an SSL projector. Every block is an
inverted residual (Sandler et al., CVPR 2018): 1x1 expansion to ``hidden``
channels, a ``kernel`` x ``kernel`` depthwise conv with ``stride``, a linear
1x1 projection to ``out`` channels, each followed by batch norm (ReLU after
the first two). A block whose input and output have the same shape adds its
input back (residual).

Channel *groups* are the tensors that must keep one width together: the stem's
output, and each non-residual block's output, with the residual blocks that
follow it (a residual sum ties their widths). Widening a group widens all of
them at once; see :mod:`edgenas.evolve.mutations`.

Like :class:`~edgenas.space.spec.ArchSpec`, this module imports without torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgenas.errors import ArchSpecError
from edgenas.space.serial import SpecFile, chain_from_dict, chain_to_dict

__all__ = ["EVOLVED_SPACE", "EVOLVED_VERSION", "BlockSpec", "EvolvedSpec"]

EVOLVED_SPACE = "evolved-cnn"
EVOLVED_VERSION = 1


@dataclass(frozen=True)
class BlockSpec:
    """One inverted-residual block: ``out`` channels, ``hidden`` expanded channels, depthwise ``kernel``, ``stride``."""

    out: int
    hidden: int
    stride: int = 1
    kernel: int = 3

    def __post_init__(self) -> None:
        for name in ("out", "hidden", "kernel"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ArchSpecError(f"block {name} must be a positive integer, got {value!r}")
        if self.stride not in (1, 2):
            raise ArchSpecError(f"block stride must be 1 or 2, got {self.stride!r}")
        if self.kernel % 2 == 0:
            raise ArchSpecError(f"block kernel must be odd, got {self.kernel}")


@dataclass(frozen=True)
class EvolvedSpec(SpecFile):
    """A network of the evolved space.

    Attributes:
        stem_channels: output channels of the 3x3 stride-1 stem conv.
        blocks: the inverted-residual blocks in order.
        resolution, in_channels: the input it was searched for (``[B, in_channels, R, R]``).
        num_classes: size of the classifier (0: none).
        projector: hidden and output widths of the SSL projection head (empty: none).
    """

    stem_channels: int
    blocks: tuple[BlockSpec, ...]
    resolution: int = 32
    in_channels: int = 3
    num_classes: int = 10
    projector: tuple[int, ...] = ()
    space: str = EVOLVED_SPACE
    space_version: int = EVOLVED_VERSION
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        self.check_space(EVOLVED_SPACE, EVOLVED_VERSION)
        for name in ("stem_channels", "resolution", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ArchSpecError(f"{name} must be a positive integer, got {value!r}")
        if self.num_classes < 0:
            raise ArchSpecError(f"num_classes must be >= 0, got {self.num_classes}")
        if not self.blocks:
            raise ArchSpecError("an evolved network needs at least one block")
        size = self.resolution
        for i, block in enumerate(self.blocks):
            if block.stride == 2:
                if size % 2:
                    raise ArchSpecError(f"block {i} halves a {size}x{size} map; the resolution must stay even")
                size //= 2

    # --- derived facts -------------------------------------------------------------
    def inputs(self) -> list[int]:
        """Input channels of each block."""
        return [self.stem_channels] + [b.out for b in self.blocks[:-1]]

    def residual(self, i: int) -> bool:
        """Whether block ``i`` adds its input to its output."""
        return self.blocks[i].stride == 1 and self.inputs()[i] == self.blocks[i].out

    def groups(self) -> list[int]:
        """The channel group of each tensor: index 0 the stem's output, ``i + 1`` block ``i``'s output.

        A group is named by the position of the tensor that starts it (0: the stem,
        ``i + 1``: non-residual block ``i``); residual blocks stay in their input's group.
        """
        out = [0]
        for i in range(len(self.blocks)):
            out.append(out[-1] if self.residual(i) else i + 1)
        return out

    def sizes(self) -> list[int]:
        """Spatial side of each tensor (same indexing as :meth:`groups`)."""
        out = [self.resolution]
        for b in self.blocks:
            out.append(out[-1] // b.stride)
        return out

    @property
    def feature_dim(self) -> int:
        return self.blocks[-1].out

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return chain_to_dict(self, "blocks")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvolvedSpec":
        return chain_from_dict(cls, data, "blocks", BlockSpec, {"stem_channels", "blocks"})
