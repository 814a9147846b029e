"""The search spaces latency tables know, by name: how to list a network's keys, plan a table, sample networks.

Each space registers one :class:`LatencySpace` in :data:`LATENCY_SPACES`
(``darts-light``: the DARTS cells; ``evolved-cnn``: grown chains of blocks; ``stages-cnn``:
dense conv stages scaled to the budgets).
Code that handles tables asks the registry, never a string comparison.
"""

from __future__ import annotations

import dataclasses
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from bench.registry import Registry
from edgenas.errors import ArchSpecError, ConfigError
from edgenas.latency.keys import Layout, cell_keys, evolved_keys, layout_keys, stage_keys
from edgenas.space.evolved import EVOLVED_SPACE, EVOLVED_VERSION
from edgenas.space.spec import SPACE_NAME, SPACE_VERSION, ArchSpec, CellGenotype, Edge
from edgenas.space.stages import STAGES_SPACE, STAGES_VERSION

__all__ = ["LATENCY_SPACES", "LatencySpace", "SpaceOptions", "TablePlan", "arch_keys", "sample_specs"]


@dataclass(frozen=True)
class SpaceOptions:
    """What frames a space's networks when a table is built or networks are sampled.

    Attributes:
        channels, cells, nodes, resolutions, ops: the cell space's layouts (every combination) and candidate ops.
        num_classes: the classifier size (it is part of the head's key).
        seed: of the calibration networks (``seed + 10000``) and of the evolved space's search config.
        calibration_networks: whole random networks measured to calibrate the sum.
        evolve: the evolved space's limits (``SearchConfig`` fields: seed_channels, max_blocks, ...).
        depth: the evolved space: networks within this many mutations of the seed are measured up front.
        max_params, max_macs: the stage space: the budgets its networks are scaled to.
        block_networks: the stage space: random networks whose blocks are measured up front.
    """

    channels: tuple[int, ...] = (8,)
    cells: tuple[int, ...] = (3,)
    nodes: int = 3
    resolutions: tuple[int, ...] = (32,)
    ops: tuple[str, ...] = ()
    num_classes: int = 10
    seed: int = 0
    calibration_networks: int = 12
    evolve: tuple[tuple[str, object], ...] = ()
    depth: int = 2
    max_params: int = 1_000_000
    max_macs: int = 100_000_000
    block_networks: int = 32

    def layouts(self) -> list[Layout]:
        """Every layout of the cell space these options name, each checked to be a valid frame.

        Raises:
            ConfigError: a combination the spec refuses (e.g. a resolution its reductions cannot divide).
        """
        g = CellGenotype(tuple((Edge("identity", 0), Edge("identity", 1)) for _ in range(self.nodes)))
        layouts = []
        for r in self.resolutions:
            for c in self.channels:
                for n in self.cells:
                    layout = Layout(channels=c, cells=n, nodes=self.nodes, resolution=r, num_classes=self.num_classes)
                    try:
                        layout.template(g, g)
                    except (ArchSpecError, ConfigError) as exc:
                        raise ConfigError(f"layout C={c} cells={n} resolution={r}: {exc}") from None
                    layouts.append(layout)
        return layouts

    def search_config(self):
        """The evolve search config these options stand for (the evolved space's limits)."""
        from edgenas.search.config import SearchConfig

        return SearchConfig(strategy="evolve", resolution=self.resolutions[0], seed=self.seed, **dict(self.evolve))


@dataclass(frozen=True)
class TablePlan:
    """What a table of a space holds: its keys, the calibration networks, and how it describes the space."""

    keys: list[str]
    calibration: list
    describe: dict


class LatencySpace(ABC):
    """A search space as latency tables see it."""

    name: str
    version: int

    @abstractmethod
    def keys(self, spec) -> list[str]:
        """The table keys of the network ``spec`` (of this space), in network order."""

    @abstractmethod
    def plan(self, options: SpaceOptions) -> TablePlan:
        """Everything a table of this space built with ``options`` measures."""

    @abstractmethod
    def sample(self, options: SpaceOptions, n: int, seed: int) -> list:
        """``n`` random deployable networks of the space framed by ``options``."""

    @abstractmethod
    def held_out(self, table, n: int, seed: int) -> list:
        """``n`` random networks of the space a table covers (its own description says which)."""

    def cover(self, table, specs: Sequence, measure: Callable[[Sequence[str]], dict] | None, path, profile) -> None:
        """Make ``table`` hold every entry ``specs`` need (a space whose tables are complete needs nothing)."""

    def predict(self, table, spec) -> float:
        """Predicted latency (ms) of the deployable network ``spec`` from what ``table`` holds.

        Raises:
            MissingEntryError: a block the table lacks (in a space whose table cannot stand in for it).
        """
        return table.predict(self.keys(dataclasses.replace(spec, projector=())))


def sample_specs(n: int, seed: int, layouts: Sequence[Layout], ops: Sequence[str]) -> list[ArchSpec]:
    """``n`` random cell-space networks: a layout, then for each node two distinct inputs, each a random op."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    choices = [op for op in ops if op != "zero"]
    if not choices:
        raise ConfigError("the space has no op but zero")
    rng = random.Random(seed)

    def genotype(nodes: int) -> CellGenotype:
        return CellGenotype(tuple(tuple(Edge(rng.choice(choices), j) for j in sorted(rng.sample(range(i + 2), 2)))
                                  for i in range(nodes)))

    specs = []
    for _ in range(n):
        layout = rng.choice(list(layouts))
        specs.append(layout.template(genotype(layout.nodes), genotype(layout.nodes)))
    return specs


class CellSpace(LatencySpace):
    """The DARTS cell space of light ops: every block at every shape is measured up front."""

    name, version = SPACE_NAME, SPACE_VERSION

    def keys(self, spec) -> list[str]:
        return cell_keys(spec, lambda reduction: spec.reduce if reduction else spec.normal)

    def plan(self, options: SpaceOptions) -> TablePlan:
        return self.plan_layouts(options.layouts(), options.ops, options.calibration_networks, options.seed)

    def plan_layouts(self, layouts: Sequence[Layout], ops: Sequence[str], calibration_networks: int,
                     seed: int) -> TablePlan:
        """The plan of a table covering ``layouts`` over ``ops`` (any set of layouts, not only a product)."""
        keys = sorted({k for layout in layouts for k in layout_keys(layout, ops)})
        calibration = sample_specs(calibration_networks, seed + 10_000, layouts, ops)
        return TablePlan(keys, calibration, {"ops": list(ops),
                                             "layouts": [dataclasses.asdict(layout) for layout in layouts]})

    def sample(self, options: SpaceOptions, n: int, seed: int) -> list:
        return sample_specs(n, seed, options.layouts(), options.ops)

    def held_out(self, table, n: int, seed: int) -> list:
        layouts = [Layout(**d) for d in table.data.get("layouts") or [{}]]
        return sample_specs(n, seed, layouts, table.data.get("ops") or ())


class EvolvedSpace(LatencySpace):
    """The evolved space: the blocks near the seed up front, the rest measured when a network first needs them."""

    name, version = EVOLVED_SPACE, EVOLVED_VERSION

    def keys(self, spec) -> list[str]:
        return evolved_keys(spec)

    def plan(self, options: SpaceOptions) -> TablePlan:
        from edgenas.latency.evolved import describe, neighbourhood, sample_evolved, seed_of

        cfg = options.search_config()
        seed = seed_of(cfg, options.num_classes)
        calibration = sample_evolved(options.calibration_networks, cfg.seed + 10_000, seed, cfg)
        keys = sorted({k for spec in [*neighbourhood(seed, cfg, options.depth), *calibration]
                       for k in evolved_keys(spec)})
        return TablePlan(keys, calibration, describe(cfg, options.num_classes))

    def sample(self, options: SpaceOptions, n: int, seed: int) -> list:
        from edgenas.latency.evolved import sample_evolved, seed_of

        if n < 1:
            raise ConfigError(f"--n must be >= 1, got {n}")
        cfg = options.search_config()
        return sample_evolved(n, seed, seed_of(cfg, options.num_classes), cfg)

    def held_out(self, table, n: int, seed: int) -> list:
        from edgenas.latency.evolved import sample_evolved, seed_of, table_classes
        from edgenas.search.config import SearchConfig

        cfg = SearchConfig(strategy="evolve", **table.data.get("evolve", {}))
        return sample_evolved(n, seed, seed_of(cfg, table_classes(table)), cfg)

    def cover(self, table, specs: Sequence, measure, path, profile) -> None:
        from edgenas.latency.evolved import GrowingTable

        growing = GrowingTable(table, path, measure, profile)
        for spec in specs:
            growing.predict(spec)


class StageSpace(LatencySpace):
    """The stage space: the blocks of random networks at the budgets up front, the rest when first needed.

    Its widths are continuous (each network is scaled to its budgets), so a table holds the blocks of
    ``block_networks`` sampled networks and of its calibration networks; a network needing others has
    them measured into the table (``cover``), and :class:`edgenas.latency.stages.StagePredictor` fits
    the widths between measured blocks while a search scales candidates to a latency budget.
    """

    name, version = STAGES_SPACE, STAGES_VERSION

    def keys(self, spec) -> list[str]:
        return stage_keys(spec)

    def plan(self, options: SpaceOptions) -> TablePlan:
        from edgenas.latency.stages import stage_describe, stage_plan

        describe = stage_describe(options.max_params, options.max_macs, options.resolutions[0], options.num_classes)
        keys, calibration = stage_plan(describe, options.block_networks, options.calibration_networks, options.seed)
        return TablePlan(keys, calibration, describe)

    def sample(self, options: SpaceOptions, n: int, seed: int) -> list:
        from edgenas.latency.stages import sample_framed, stage_describe

        return sample_framed(n, seed, stage_describe(options.max_params, options.max_macs, options.resolutions[0],
                                                     options.num_classes))

    def held_out(self, table, n: int, seed: int) -> list:
        from edgenas.latency.stages import sample_framed, stage_describe

        describe = {"stages": table.data.get("stages"), "num_classes": table.data.get("num_classes")}
        if not describe["stages"]:  # a table that does not say: the default budgets
            describe = stage_describe(1_000_000, 100_000_000, 32, 10)
        return sample_framed(n, seed, describe)

    def cover(self, table, specs: Sequence, measure, path, profile) -> None:
        from edgenas.latency.evolved import GrowingTable

        growing = GrowingTable(table, path, measure, profile, stage_keys)
        for spec in specs:
            growing.predict(spec)

    def predict(self, table, spec) -> float:
        from edgenas.latency.stages import StagePredictor

        return StagePredictor(table).predict(spec)


LATENCY_SPACES: Registry[LatencySpace] = Registry("search space")
LATENCY_SPACES.register(SPACE_NAME, CellSpace())
LATENCY_SPACES.register(EVOLVED_SPACE, EvolvedSpace())
LATENCY_SPACES.register(STAGES_SPACE, StageSpace())


def arch_keys(spec) -> list[str]:
    """The table keys of every block of the network ``spec`` describes, in network order (any space)."""
    return LATENCY_SPACES.get(spec.space).keys(spec)
