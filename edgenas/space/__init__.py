"""The search space: light ops, mixed ops, cells and the searchable network.

Custom ops join the space by name, without editing the package::

    from edgenas.space import register_op

    @register_op("dw5x5")
    def dw5x5(C: int, stride: int, affine: bool) -> nn.Module:
        ...

and are then used with ``--ops ds_conv,dw5x5,...`` (``--plugin my_module`` on the
command line imports the module that registers them).

The ArchSpec types import without torch (a latency prediction from an
``arch.json`` runs where torch is absent); the ops import torch on first use.
"""

from edgenas.space.spec import ArchSpec, CellGenotype, Edge

__all__ = ["OPS", "ArchSpec", "CellGenotype", "Edge", "register_op"]


def __getattr__(name: str):
    if name in ("OPS", "register_op"):
        from edgenas.space import ops

        return getattr(ops, name)
    raise AttributeError(f"module 'edgenas.space' has no attribute {name!r}")
