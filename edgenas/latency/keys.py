"""Latency-table keys: the one place they are built and parsed, and the keys of a network.

A key names one block at one shape, the unit a table measures::

    stem/c3-24/r32            the cell space's stem, 3 -> 24 channels, 32x32 input
    pre/conv1x1/c24-8/r32     a cell's pre-processing (conv1x1, or fr: factorized reduction)
    op/ds_conv/c8/s1/r32      a candidate op: channels, stride, input side
    head/c48-10/r8            pooling + classifier
    empty/c8/r32              an empty model of that input: the cost of calling the runtime at all
    estem/c3-32/r32           the evolved space's stem
    eblock/c32-96-32/k3/s2/r32  an evolved block: in-hidden-out channels, kernel, stride, input side
    sstem/c3-16/r32           the stage space's stem (3x3 conv-BN-ReLU)
    sconv/c16-64/k5/s2/r32    a stage's conv block: kernel, s2 when a 2x2 max pool follows the conv
    sres/c64-64/r16           one residual pair of a stage (two 3x3 conv-BN-ReLU and the addition)
    shead/c144-10/r4          the stage space's head: global max pooling + classifier

It reads specs only: no torch, so a prediction runs wherever a table and an
``arch.json`` are. :func:`edgenas.latency.spaces.arch_keys` gives the keys of a
network of any space.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from edgenas.errors import ConfigError
from edgenas.space.spec import ArchSpec, CellGenotype, Edge

__all__ = ["BlockKey", "Layout", "cell_keys", "empty_keys", "evolved_keys", "layout_keys", "parse_key", "stage_keys"]

KINDS = ("stem", "pre", "op", "head", "empty", "estem", "eblock", "sstem", "sconv", "sres", "shead")


@dataclass(frozen=True)
class BlockKey:
    """One table key, parsed: ``str(key)`` writes it back.

    Attributes:
        kind: one of :data:`KINDS`.
        c_in, c_out: channels in and out (the same for ``op`` and ``empty``).
        size: input side in pixels.
        name: the op (``op``) or pre-processing (``pre``: ``conv1x1``, ``fr``).
        stride: 1 or 2 (written only for ``op``, ``eblock`` and ``sconv``, where 2 is the pool).
        hidden: ``eblock`` only; kernel: ``eblock`` and ``sconv``.
    """

    kind: str
    c_in: int
    c_out: int
    size: int
    name: str = ""
    stride: int = 1
    hidden: int = 0
    kernel: int = 3

    def __str__(self) -> str:
        r = f"r{self.size}"
        if self.kind == "op":
            return f"op/{self.name}/c{self.c_in}/s{self.stride}/{r}"
        if self.kind == "empty":
            return f"empty/c{self.c_in}/{r}"
        if self.kind == "pre":
            return f"pre/{self.name}/c{self.c_in}-{self.c_out}/{r}"
        if self.kind == "eblock":
            return f"eblock/c{self.c_in}-{self.hidden}-{self.c_out}/k{self.kernel}/s{self.stride}/{r}"
        if self.kind == "sconv":
            return f"sconv/c{self.c_in}-{self.c_out}/k{self.kernel}/s{self.stride}/{r}"
        return f"{self.kind}/c{self.c_in}-{self.c_out}/{r}"  # stem, head, estem, sstem, sres, shead

    @property
    def empty(self) -> BlockKey:
        """The empty model of this block's input shape."""
        return BlockKey("empty", self.c_in, self.c_in, self.size)

    @classmethod
    def op(cls, name: str, channels: int, stride: int, size: int) -> BlockKey:
        return cls("op", channels, channels, size, name=name, stride=stride)


def parse_key(key: str) -> BlockKey:
    """The :class:`BlockKey` of a key string.

    Raises:
        ConfigError: not a key of any space.
    """
    parts = key.split("/") if isinstance(key, str) else []
    fields: dict = {}
    for part in parts[1:]:
        head, tail = part[:1], part[1:]
        if head == "c" and tail.replace("-", "").isdigit() and "--" not in tail:
            channels = [int(v) for v in tail.split("-")]
            fields["c_in"], fields["c_out"] = channels[0], channels[-1]
            if len(channels) == 3:
                fields["hidden"] = channels[1]
        elif head in ("k", "s", "r") and tail.isdigit():
            fields[{"k": "kernel", "s": "stride", "r": "size"}[head]] = int(tail)
        else:
            fields["name"] = part
    if not parts or parts[0] not in KINDS or "c_in" not in fields or "size" not in fields:
        raise ConfigError(f"unknown table key {key!r}")
    return BlockKey(parts[0], **fields)


def empty_keys(keys: Iterable[str]) -> list[str]:
    """The ``empty/...`` key of each input shape among ``keys`` (sorted, unique)."""
    return sorted({str(parse_key(k).empty) for k in keys})


def cell_keys(spec: ArchSpec, genotype_of: Callable[[bool], CellGenotype]) -> list[str]:
    """Keys of the blocks of a cell-space network; ``genotype_of(reduction)`` gives each cell's genotype.

    A "genotype" whose nodes list every op on every edge yields every key the
    frame can need (:func:`layout_keys`).
    """
    size = spec.resolution
    keys = [str(BlockKey("stem", spec.in_channels, spec.stem_channels, size))]
    c_pp = c_p = spec.stem_channels
    size_pp = size
    reduction_prev = False
    for reduction, C in spec.cell_channels():
        keys.append(str(BlockKey("pre", c_pp, C, size_pp, name="fr" if reduction_prev else "conv1x1")))
        keys.append(str(BlockKey("pre", c_p, C, size, name="conv1x1")))
        out = size // 2 if reduction else size
        for node in genotype_of(reduction).nodes:
            for e in node:
                if e.op != "zero":
                    stride = 2 if reduction and e.input < 2 else 1
                    keys.append(str(BlockKey.op(e.op, C, stride, size if e.input < 2 else out)))
        c_pp, c_p = c_p, spec.nodes * C
        size_pp, size = size, out
        reduction_prev = reduction
    keys.append(str(BlockKey("head", c_p, spec.num_classes, size)))
    return keys


def evolved_keys(spec) -> list[str]:
    """Keys of the blocks of an evolved network (``EvolvedSpec``), in network order."""
    size = spec.resolution
    keys = [str(BlockKey("estem", spec.in_channels, spec.stem_channels, size))]
    for c_in, b in zip(spec.inputs(), spec.blocks):
        keys.append(str(BlockKey("eblock", c_in, b.out, size, stride=b.stride, hidden=b.hidden, kernel=b.kernel)))
        size //= b.stride
    return keys + [str(BlockKey("head", spec.feature_dim, spec.num_classes, size))]


def stage_keys(spec) -> list[str]:
    """Keys of the blocks of a stage-space network (``StageSpec``), in network order."""
    size = spec.resolution
    keys = [str(BlockKey("sstem", spec.in_channels, spec.stem_channels, size))] if spec.stem_channels else []
    for c_in, s in zip(spec.inputs(), spec.stages):
        keys.append(str(BlockKey("sconv", c_in, s.width, size, stride=2 if s.pool else 1, kernel=s.kernel)))
        size = size // 2 if s.pool else size
        keys += [str(BlockKey("sres", s.width, s.width, size))] * s.residual
    return keys + [str(BlockKey("shead", spec.feature_dim, spec.num_classes, size))]


@dataclass(frozen=True)
class Layout:
    """The fixed frame of a cell-space network: what the genotypes are placed into."""

    channels: int = 8
    cells: int = 3
    nodes: int = 3
    resolution: int = 32
    stem_multiplier: int = 3
    num_classes: int = 10

    def template(self, normal: CellGenotype, reduce: CellGenotype) -> ArchSpec:
        from edgenas.space.spec import reduction_positions

        return ArchSpec(normal=normal, reduce=reduce, channels=self.channels, num_cells=self.cells,
                        reduction_cells=reduction_positions(self.cells), stem_channels=self.stem_multiplier
                        * self.channels, resolution=self.resolution, num_classes=self.num_classes, projector=())


def layout_keys(layout: Layout, ops: Sequence[str]) -> list[str]:
    """Every key a network of ``layout`` can need, over the candidate ``ops`` on every edge (sorted, unique)."""
    ops = [op for op in ops if op != "zero"]
    if not ops:
        raise ConfigError("the space has no op but zero")
    # every (op, input) pair of every node: not a valid genotype (a node keeps two inputs), only a key generator
    full = CellGenotype.__new__(CellGenotype)
    object.__setattr__(full, "nodes", tuple(tuple(Edge(op, j) for j in range(i + 2) for op in ops)
                                            for i in range(layout.nodes)))
    simple = CellGenotype(tuple((Edge(ops[0], 0), Edge(ops[0], 1)) for _ in range(layout.nodes)))
    return sorted(set(cell_keys(layout.template(simple, simple), lambda reduction: full)))
