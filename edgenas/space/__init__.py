"""The search space: light ops, mixed ops, cells and the searchable network.

Custom ops join the space by name, without editing the package::

    from edgenas.space import register_op

    @register_op("dw5x5")
    def dw5x5(C: int, stride: int, affine: bool) -> nn.Module:
        ...

and are then used with ``--ops ds_conv,dw5x5,...`` (``--plugin my_module`` on the
command line imports the module that registers them).
"""

from edgenas.space.ops import OPS, register_op
from edgenas.space.spec import ArchSpec, CellGenotype, Edge

__all__ = ["OPS", "ArchSpec", "CellGenotype", "Edge", "register_op"]
