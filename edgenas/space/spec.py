"""ArchSpec: a searched architecture as a value (the ``arch.json`` contract).

An :class:`ArchSpec` holds everything needed to rebuild the network with no
supernet and no search code (docs/architecture.md): space name and version, input
resolution and channels, stem, the cell genotypes (per node: its two input
edges and their ops), the cell layout, channel widths, number of classes and
the SSL projector. It is frozen and hashable; ``edgenas.models.build(spec)`` is
the only constructor of the network it describes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edgenas.errors import ArchSpecError
from edgenas.space.serial import SpecFile, common_fields

SPACE_NAME = "darts-light"
SPACE_VERSION = 1


def reduction_positions(num_cells: int) -> tuple[int, ...]:
    """Where the reduction cells sit: at 1/3 and 2/3 of the depth (DARTS); one when < 3 cells."""
    if num_cells < 3:
        return (num_cells - 1,) if num_cells > 1 else ()
    return tuple(sorted({num_cells // 3, 2 * num_cells // 3}))


@dataclass(frozen=True)
class Edge:
    """One input edge of a cell node: ``op`` applied to state ``input``.

    States are numbered 0 (output of cell k-2), 1 (output of cell k-1), then
    2, 3, ... for the cell's intermediate nodes in order.
    """

    op: str
    input: int


@dataclass(frozen=True)
class CellGenotype:
    """The discrete structure shared by all cells of one kind (normal or reduction).

    ``nodes[i]`` lists the edges feeding intermediate node ``i`` (state ``i + 2``).
    The cell output concatenates all intermediate nodes.
    """

    nodes: tuple[tuple[Edge, ...], ...]

    def to_list(self) -> list[list[list[Any]]]:
        return [[[e.op, e.input] for e in node] for node in self.nodes]

    @classmethod
    def from_list(cls, data: Any) -> "CellGenotype":
        try:
            return cls(tuple(tuple(Edge(str(op), int(inp)) for op, inp in node) for node in data))
        except (TypeError, ValueError) as exc:
            raise ArchSpecError(f"a cell genotype must be a list of nodes of [op, input] pairs: {exc}") from None


@dataclass(frozen=True)
class ArchSpec(SpecFile):
    """A discrete network of the cell space.

    Attributes:
        normal, reduce: genotypes of normal and reduction cells.
        channels: ``C``, the channels of each node in the first cells (doubled at each reduction).
        num_cells: cells in the network; reductions sit at ``reduction_cells``.
        stem_channels: output channels of the 3x3 stem conv.
        resolution, in_channels: the input the network was searched for (``[B, in_channels, R, R]``).
        num_classes: size of the classifier (0: no classifier).
        projector: hidden and output widths of the SSL projection head (empty: none).
    """

    normal: CellGenotype
    reduce: CellGenotype
    channels: int
    num_cells: int
    reduction_cells: tuple[int, ...]
    stem_channels: int
    resolution: int = 32
    in_channels: int = 3
    num_classes: int = 10
    projector: tuple[int, ...] = (256, 256)
    space: str = SPACE_NAME
    space_version: int = SPACE_VERSION
    extra: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        self.check_space(SPACE_NAME, SPACE_VERSION)
        for name, value in (("channels", self.channels), ("num_cells", self.num_cells),
                            ("stem_channels", self.stem_channels), ("resolution", self.resolution),
                            ("in_channels", self.in_channels)):
            if not isinstance(value, int) or value <= 0:
                raise ArchSpecError(f"{name} must be a positive integer, got {value!r}")
        if self.channels % 2:
            raise ArchSpecError(f"channels must be even (factorized reduction), got {self.channels}")
        if self.num_classes < 0:
            raise ArchSpecError(f"num_classes must be >= 0, got {self.num_classes}")
        if any(not 0 <= r < self.num_cells for r in self.reduction_cells):
            raise ArchSpecError(f"reduction_cells {self.reduction_cells} outside 0..{self.num_cells - 1}")
        if self.resolution % (2 ** len(self.reduction_cells)):
            raise ArchSpecError(
                f"resolution {self.resolution} must be divisible by 2^{len(self.reduction_cells)} (one halving per reduction cell)"
            )
        self._check_genotype("normal", self.normal)
        self._check_genotype("reduce", self.reduce)

    @staticmethod
    def _check_genotype(kind: str, genotype: CellGenotype) -> None:
        try:
            from edgenas.space.ops import OPS
        except ImportError:  # no torch here (e.g. predicting latency on a device): names are checked where built
            OPS = None

        if not genotype.nodes:
            raise ArchSpecError(f"{kind} cell has no nodes")
        for i, node in enumerate(genotype.nodes):
            if not node:
                raise ArchSpecError(f"{kind} cell node {i} has no input edge")
            inputs = [e.input for e in node]
            if len(set(inputs)) != len(inputs):
                raise ArchSpecError(f"{kind} cell node {i}: two edges from the same input {inputs}")
            for edge in node:
                if (OPS is not None and edge.op not in OPS) or edge.op == "zero" or not isinstance(edge.op, str):
                    hint = "'zero' is not a kept op" if edge.op == "zero" else (
                        OPS.unknown_message(edge.op) if OPS is not None else f"op {edge.op!r} is not a name")
                    raise ArchSpecError(
                        f"{kind} cell node {i}: {hint}; custom ops must be registered (register_op) "
                        "before the spec is loaded"
                    )
                if not 0 <= edge.input < i + 2:
                    raise ArchSpecError(f"{kind} cell node {i}: input {edge.input} must be in 0..{i + 1}")

    # --- derived facts -------------------------------------------------------------
    @property
    def nodes(self) -> int:
        return len(self.normal.nodes)

    def cell_channels(self) -> list[tuple[bool, int]]:
        """Per cell: (is_reduction, C of its nodes)."""
        out, C = [], self.channels
        for i in range(self.num_cells):
            red = i in self.reduction_cells
            if red:
                C *= 2
            out.append((red, C))
        return out

    def with_width(self, width_multiplier: float) -> "ArchSpec":
        """The same genotype with every width scaled (rounded to an even number)."""
        if width_multiplier <= 0:
            raise ArchSpecError(f"width multiplier must be > 0, got {width_multiplier}")
        scale = lambda c: max(2, int(round(c * width_multiplier / 2)) * 2)  # noqa: E731
        return replace(self, channels=scale(self.channels), stem_channels=scale(self.stem_channels))

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["normal"] = self.normal.to_list()
        d["reduce"] = self.reduce.to_list()
        d["reduction_cells"] = list(self.reduction_cells)
        return common_fields(d)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArchSpec":
        if not isinstance(data, dict):
            raise ArchSpecError("arch.json must hold a JSON object")
        if data.get("space", SPACE_NAME) != SPACE_NAME:
            raise ArchSpecError(f"arch.json describes a network of space {data.get('space')!r}; this needs one of "
                                f"{SPACE_NAME!r} (the DARTS cell space)")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ArchSpecError(f"arch.json has unknown fields: {', '.join(sorted(unknown))}")
        missing = {"normal", "reduce", "channels", "num_cells", "reduction_cells", "stem_channels"} - set(data)
        if missing:
            raise ArchSpecError(f"arch.json lacks fields: {', '.join(sorted(missing))}")
        d = dict(data)
        d["normal"] = CellGenotype.from_list(d["normal"])
        d["reduce"] = CellGenotype.from_list(d["reduce"])
        try:
            d["reduction_cells"] = tuple(int(r) for r in d["reduction_cells"])
            d["projector"] = tuple(int(p) for p in d.get("projector", ()))
            d["extra"] = tuple(sorted((str(k), str(v)) for k, v in dict(d.get("extra", {})).items()))
        except (TypeError, ValueError) as exc:
            raise ArchSpecError(f"arch.json has a malformed field: {exc}") from None
        return cls(**d)

    @classmethod
    def from_json(cls, text: str) -> "ArchSpec":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ArchSpecError(f"arch.json is not valid JSON: {exc}") from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ArchSpec":
        """Read an ``arch.json`` of the cell space (or a run directory holding one).

        Raises:
            ArchSpecError: missing, unreadable or malformed file, or a spec of another space.
        """
        return cls.from_dict(read_arch_json(path)[1])


def read_arch_json(path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """(the file, its JSON object) of an ``arch.json`` or of the run directory holding one.

    Raises:
        ArchSpecError: missing, unreadable or not JSON.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "arch.json"
    if not p.is_file():
        raise ArchSpecError(f"no arch.json at {p}")
    try:
        return p, json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ArchSpecError(f"cannot read {p}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ArchSpecError(f"arch.json is not valid JSON: {exc}") from None
