"""The torch module of each table key: what a latency table times, one block at a time."""

from __future__ import annotations

from edgenas.errors import ConfigError
from edgenas.latency.keys import parse_key

__all__ = ["key_module"]


def key_module(key: str):
    """(module, input shape [1, C, R, R]) of a table key: the block alone, in eval mode, BN not yet folded.

    Raises:
        ConfigError: not a key of any space.
    """
    import torch
    from torch import nn

    k = parse_key(key)
    shape = (1, k.c_in, k.size, k.size)
    if k.kind == "stem":
        from edgenas.space.network import make_stem

        module = make_stem(k.c_in, k.c_out)
    elif k.kind == "pre":
        from edgenas.space.cells import FactorizedReduce
        from edgenas.space.ops import ConvBN

        module = FactorizedReduce(k.c_in, k.c_out, True) if k.name == "fr" else ConvBN(k.c_in, k.c_out, 1, 1, True)
    elif k.kind == "op":
        from edgenas.space.ops import build_op

        module = build_op(k.name, k.c_in, k.stride, affine=True)
    elif k.kind == "estem":
        from edgenas.models.evolved import make_evolved_stem

        module = make_evolved_stem(k.c_in, k.c_out)
    elif k.kind == "eblock":
        from edgenas.models.evolved import EvoBlock
        from edgenas.space.evolved import BlockSpec

        module = EvoBlock(k.c_in, BlockSpec(k.c_out, k.hidden, k.stride, k.kernel))
    elif k.kind in ("sstem", "sconv"):
        from edgenas.models.stages import ConvBlock

        module = ConvBlock(k.c_in, k.c_out, k.kernel if k.kind == "sconv" else 3, pool=k.stride == 2)
    elif k.kind == "sres":
        from edgenas.models.stages import ResidualPair

        module = ResidualPair(k.c_in)
    elif k.kind in ("head", "shead"):
        module = _head(k.c_in, k.c_out, "max" if k.kind == "shead" else "mean")
    elif k.kind == "empty":
        module = _empty()
    else:  # parse_key knows only the kinds above
        raise ConfigError(f"unknown table key {key!r}")
    torch.manual_seed(0)
    for m in module.modules():  # BN statistics of a trained net, so folding gives realistic weights
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    return module.eval(), shape


def _head(c_in: int, classes: int, pool: str = "mean"):
    """Global average (or, for the stage space, max) pooling and the classifier, as every searched network ends."""
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.classifier = nn.Linear(c_in, classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(x.amax((2, 3)) if pool == "max" else x.mean((2, 3)))

    return Head()


def _empty():
    from torch import nn

    class Empty(nn.Module):
        """What calling the runtime costs: one trivial op on the input (an identity graph may be elided)."""

        def forward(self, x):
            return x + 1.0

    return Empty()
