"""Parameters and multiply-accumulates (MACs) of a network.

MACs are counted with :class:`torch.utils.flop_counter.FlopCounterMode`, which
counts 2 FLOPs per multiply-accumulate of convolutions (groups included, so
depthwise convolutions cost ``C * k * k * H_out * W_out``) and matrix products;
we halve its total. Batch norm, activations, pooling, element-wise adds and
biases are not counted, which is the convention of the MobileNet and
EfficientNet papers (torchvision MobileNetV2 at 224: 300.8M vs 300M published).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from edgenas.errors import ConfigError

__all__ = ["MAX_BUILD_MACS", "MAX_BUILD_PARAMS", "Profile", "check_buildable", "count_macs", "count_params",
           "input_shape", "profile_model"]

#: the largest network edgenas builds: 500M parameters (2 GB of fp32 weights) and 10^12 MACs per image
#: (EfficientNet-B7 at 600 px is 37 GMACs); beyond, a spec is a typo or an attack, not a network
MAX_BUILD_PARAMS = 500_000_000
MAX_BUILD_MACS = 10**12



def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``, trainable or frozen.

    Buffers (batch-norm running statistics) are not parameters and are not
    counted; a parameter shared by two modules is counted once.
    """
    return sum(p.numel() for p in model.parameters())


def input_shape(input_size: int | Sequence[int], in_channels: int = 3) -> tuple[int, int, int, int]:
    """Normalise an input size to an ``(1, C, H, W)`` shape.

    Args:
        input_size: a square resolution ``R`` (pixels), ``(H, W)``, ``(C, H, W)``
            or ``(1, C, H, W)``.
        in_channels: ``C`` when ``input_size`` does not give it.

    Raises:
        ConfigError: a non-positive size, a batch other than 1 (MACs are per
            image), or a shape of another length.
    """
    if isinstance(input_size, int):
        dims = (1, in_channels, input_size, input_size)
    else:
        size = tuple(int(d) for d in input_size)
        if len(size) == 2:
            dims = (1, in_channels, *size)
        elif len(size) == 3:
            dims = (1, *size)
        elif len(size) == 4:
            dims = size
        else:
            raise ConfigError(f"input size must be R, (H, W), (C, H, W) or (1, C, H, W), got {input_size!r}")
    if dims[0] != 1:
        raise ConfigError(f"MACs are counted per image: batch must be 1, got input size {input_size!r}")
    if any(d <= 0 for d in dims):
        raise ConfigError(f"input size must be positive, got {input_size!r}")
    return dims  # type: ignore[return-value]


def count_macs(model: nn.Module, input_size: int | Sequence[int] = 32, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on one image.

    The model runs once in eval mode (so batch norm and dropout behave as at
    inference) under ``torch.no_grad``; each module's train/eval flag is
    restored afterwards, even if the forward raises.

    Args:
        model: any ``nn.Module`` taking one ``(1, C, H, W)`` tensor.
        input_size: see :func:`input_shape`; an int is a square resolution.
        in_channels: input channels when ``input_size`` does not give them.

    Returns:
        MACs (FLOPs / 2) as an int.

    Raises:
        ConfigError: a malformed input size.
    """
    shape = input_shape(input_size, in_channels)
    # Match the model's device and dtype so that a CUDA or half model works too.
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None and first.is_floating_point() else torch.float32
    x = torch.zeros(shape, device=device, dtype=dtype)

    # Save each module's flag rather than model.training: sub-modules may be
    # in a mode that differs from the root (e.g. frozen batch norm).
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                model(x)
    finally:
        for module, mode in modes:
            module.training = mode
    return int(counter.get_total_flops()) // 2


@dataclass(frozen=True)
class Profile:
    """Static cost of a network at one input resolution.

    Attributes:
        params: number of parameters (see :func:`count_params`).
        macs: multiply-accumulates per image (see :func:`count_macs`).
        resolution: square input side in pixels.
        in_channels: input channels.
    """

    params: int
    macs: int
    resolution: int
    in_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("params", "macs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"Profile.{name} must be a non-negative int, got {value!r}")
        for name in ("resolution", "in_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"Profile.{name} must be a positive int, got {value!r}")

    @property
    def params_m(self) -> float:
        """Parameters in millions."""
        return self.params / 1e6

    @property
    def macs_m(self) -> float:
        """MACs in millions."""
        return self.macs / 1e6

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        """Inverse of :meth:`to_dict`; raises :class:`ConfigError` on unknown keys."""
        unknown = set(data) - {"params", "macs", "resolution", "in_channels"}
        if unknown:
            raise ConfigError(f"unknown Profile keys: {', '.join(sorted(unknown))}")
        return cls(**data)


def profile_model(model: nn.Module, resolution: int, in_channels: int = 3) -> Profile:
    """Parameters and MACs of ``model`` on a ``(1, in_channels, resolution, resolution)`` input.

    Raises:
        ConfigError: a non-positive resolution or channel count.
    """
    return Profile(
        params=count_params(model),
        macs=count_macs(model, resolution, in_channels),
        resolution=resolution,
        in_channels=in_channels,
    )


def check_buildable(make, input_size, what: str) -> tuple[int, int]:
    """(params, MACs) of the network ``make()`` returns, counted on the meta device: nothing is allocated.

    Args:
        make: builds the network (called under ``torch.device("meta")``).
        input_size: as :func:`input_shape`.
        what: the network, for the message.

    Raises:
        ArchSpecError: more than :data:`MAX_BUILD_PARAMS` parameters or :data:`MAX_BUILD_MACS` MACs.
    """
    from edgenas.errors import ArchSpecError

    try:
        with torch.device("meta"):
            model = make()
        params, macs = count_params(model), count_macs(model, input_size)
    except (RuntimeError, OverflowError, ValueError, MemoryError) as exc:  # sizes too large even to describe
        reason = " ".join(str(exc).split())[:120] or type(exc).__name__
        raise ArchSpecError(f"{what} is too large to build ({reason}): check its channels and resolution") from None
    if params > MAX_BUILD_PARAMS or macs > MAX_BUILD_MACS:
        raise ArchSpecError(f"{what} would have {params:,} parameters and {macs:,} MACs per image, beyond what "
                            f"edgenas builds ({MAX_BUILD_PARAMS:,} parameters, {MAX_BUILD_MACS:,} MACs): check "
                            "its channels and resolution")
    return params, macs
