"""The search configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgenas.configs import config_from_dict, config_to_dict
from edgenas.errors import ConfigError
from edgenas.space.evolved import EVOLVED_SPACE
from edgenas.space.ops import DEFAULT_OPS
from edgenas.space.spec import SPACE_NAME
from edgenas.space.stages import STAGES_SPACE

#: search strategies: the DARTS supernet, or a seed network grown by evolution
STRATEGIES = ("darts", "evolve", "proxy")
#: self-supervised objectives: two-view losses on the projector, DINO (multi-crop, EMA teacher), rotation
SSL_PARTS = ("barlow", "ntxent", "dino", "rotation")

#: Fields that may differ between a checkpoint and the command that resumes it.
RESUMABLE_CHANGES = frozenset({"out", "device", "threads", "checkpoint_every", "progress", "amp", "channels_last",
                               "sync_bn", "recompute"})
#: options of the refinement stage, which has its own checkpoint and identity: a finished search
#: can be refined (or refined again, into a fresh directory) without searching again
REFINE_OPTIONS = frozenset({"refine_epochs", "refine_batch_size", "refine_lr", "refine_subset"})

#: the largest value each size option may take: beyond, a value is a typo (it would exhaust memory), not a search
UPPER_BOUNDS = {"resolution": 1024, "channels": 1024, "cells": 64, "nodes": 16, "stem_multiplier": 32,
                "batch_size": 65_536, "accum_steps": 1024, "subset": 10_000_000, "epochs": 100_000,
                "seed_channels": 1024, "seed_blocks": 64, "max_blocks": 256, "max_channels": 4096, "expansion": 16,
                "local_crops": 32, "refine_epochs": 100_000, "refine_batch_size": 65_536, "dino_out_dim": 65_536}

#: the spaces each strategy searches, its default first (``--space auto``)
STRATEGY_SPACES = {"darts": (SPACE_NAME,), "evolve": (EVOLVED_SPACE,), "proxy": (STAGES_SPACE, SPACE_NAME)}

#: images a search sees when --subset is not given (every image when the data holds fewer)
DEFAULT_SUBSET = 1024
#: ... and those of the proxy strategy on real images, for its race (it needs 1,128; measured on 5,000)
RACE_SUBSET = 5000
#: candidates the proxy strategy races on rotation prediction by default: on the stage space, with enough real
#: images (the synthetic shapes look alike turned: no candidate learns to tell the turns apart on them)
DEFAULT_RACE = 8
#: ... and the rotation steps each trains for
DEFAULT_RACE_STEPS = 200
#: candidates whose median MACs (of the first SMALL_RACE sampled) are at most this are small: a 200-step race did not
#: rank networks of 15-22M MACs (Spearman 0.02 over 24), a 1,000-step race did (0.27-0.61, four races), and the
#: picks of 24 x 1,000 steps fine-tuned to 77.0% against the short race's 75.9%; 8 x 200 ranks those of ~90M (0.52)
SMALL_MACS = 40_000_000
#: the default race of small candidates: more of them, each trained longer (each step costs less)
SMALL_RACE, SMALL_RACE_STEPS = 24, 1000
#: how a race chooses: the best rotation learner, or the best rank average of rotation and NASWOT (small candidates'
#: default: it ranked 0.64-0.75 against the 40-epoch accuracy of three samples of 24, rotation 0.27-0.43)
RACE_CHOICES = ("rotation", "rotation+naswot")

#: the supernets of the DARTS strategy: every op of every edge, or one sampled op per edge per step
SUPERNETS = ("full", "sampled")

#: options earlier versions wrote to config.yaml that mean nothing now (dropped when read)
RETIRED_OPTIONS = frozenset({"extra"})


@dataclass(frozen=True)
class SearchConfig:
    """Every option of ``edgenas search`` (written to ``config.yaml`` as used).

    Budgets are for the deployable network (backbone + classifier, without the SSL
    projector) at ``resolution``; MACs are multiply-accumulates of one image.
    """

    out: str = "runs/search"
    target: str | None = None
    strategy: str = "proxy"  # the default by measurement (docs/search.md, "Does the search search?")
    space: str = "auto"  # the search space (STRATEGY_SPACES); auto: the strategy's own
    # data
    data: str = "synthetic"
    data_root: str | None = None
    subset: int | None = None  # None: RACE_SUBSET for a race, else DEFAULT_SUBSET (all when the data holds fewer)
    level: int = 2
    resolution: int = 32
    # space: channels and cells 0 = chosen from the budgets (the largest layout whose expected network fits)
    channels: int = 0
    cells: int = 0
    nodes: int = 3
    stem_multiplier: int = 3
    ops: tuple[str, ...] = DEFAULT_OPS
    plugins: tuple[str, ...] = ()
    projector: tuple[int, ...] = (128, 128)
    # objective: one name, or several joined by "+" (e.g. "dino+rotation"), weighted by ssl_weights
    ssl: str = "barlow"
    ssl_weights: tuple[tuple[str, float], ...] = ()
    bt_lambda: float = 0.005
    ntxent_temperature: float = 0.1
    dino_out_dim: int = 1024
    dino_student_temp: float = 0.1
    dino_teacher_temp: float = 0.04
    dino_momentum: float = 0.996
    dino_momentum_schedule: str = "constant"
    local_crops: int = 6
    # evolution strategy (--strategy evolve); evolution=False trains the seed only (an ablation)
    evolution: bool = True
    seed_channels: int = 32
    seed_blocks: int = 2
    expansion: int = 3
    max_blocks: int = 6
    max_channels: int = 256
    widen_factor: float = 1.5
    importance: str = "taylor"
    plateau_window: int = 8
    plateau_threshold: float = 0.01
    min_steps_between_mutations: int = 16
    trial_steps: int = 8
    trial_candidates: int = 3
    fitness_cost_weight: float = 0.05
    sparse_routing: bool = True
    sparsity: float = 1e-4
    importance_mass: float = 0.9
    curriculum: bool = False
    curriculum_mode: str = "epochs"
    # optimisation
    epochs: int = 4
    batch_size: int = 32
    accum_steps: int = 1
    order: str = "first"
    # supernet: "full" runs every op of every edge (DARTS); "sampled" one op per edge per step (GDAS), so a
    # step costs about one network and the search runs at the size it deploys
    supernet: str = "sampled"
    tau_max: float = 5.0
    tau_min: float = 0.5
    arch_every: int = 0  # 0: every step for the full supernet, every other step for the sampled one
    # the proxy strategy: rank this many random architectures with these label-free proxies, train the best
    proxies: tuple[str, ...] = ("naswot", "synflow")
    proxy_samples: int = 500
    proxy_batch: int = 32
    # then race `race` candidates `race_steps` steps on rotation prediction (label-free), keep the best by `race_by`
    # (search/race.py). None: DEFAULT_RACE (SMALL_RACE for small candidates) on the stage space and real images
    # enough for it, else 0 (0: the zero-cost ranking decides); race_steps, race_by None: by size (race_*_for)
    race: int | None = None
    race_steps: int | None = None
    race_from: str = "sample"  # sample: the first sampled (no zero-cost filter); top: the zero-cost ranking's best
    race_by: str | None = None  # one of RACE_CHOICES
    lr: float = 0.05
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 6e-3
    arch_weight_decay: float = 1e-3
    warmup_epochs: int = 0
    # refinement of the derived network (edgenas.train.ssl_stage): its own stage, resumable on its own
    refine_epochs: int = 0
    refine_batch_size: int = 256
    refine_lr: float = 0.2
    refine_subset: int | None = None
    # budgets
    max_params: int = 1_000_000
    max_macs: int = 100_000_000
    latency_ms: float | None = None
    latency_margin: float = 0.05
    lut: str | None = None
    latency_also: tuple[str, ...] = ()  # FILE=MS: other tables (runtimes) the proxy search's network must meet too
    cost_weight: float = 1.0
    # run
    seed: int = 0
    device: str = "auto"
    amp: str = "none"
    channels_last: bool = True
    # DARTS: activation checkpointing of each supernet edge. None: on for the sampled supernet (the same step,
    # 41-46% less memory, about the same time), off for the full one (every op would run twice)
    recompute: bool | None = None
    sync_bn: bool = False
    threads: int = 0
    checkpoint_every: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        positive = ("resolution", "nodes", "stem_multiplier", "epochs", "batch_size", "accum_steps",
                    "max_params", "max_macs", "checkpoint_every")
        for name in ("channels", "cells"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"--{name} must be a positive integer (or 0: chosen from the budgets), "
                                  f"got {value!r}")
        for name in positive + (("subset",) if self.subset is not None else ()):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        for name, most in UPPER_BOUNDS.items():
            value = getattr(self, name)
            if isinstance(value, int) and value > most:
                raise ConfigError(f"--{name.replace('_', '-')} {value} is beyond what a search can run "
                                  f"(at most {most:,})")
        if any(not isinstance(w, int) or isinstance(w, bool) or not 0 < w <= 65_536 for w in self.projector):
            raise ConfigError(f"--projector widths must be integers in 1..65536, got {list(self.projector)}")
        for name in ("lr", "arch_lr"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be > 0, got {getattr(self, name)}")
        for name in ("lr_min", "momentum", "weight_decay", "arch_weight_decay", "bt_lambda", "cost_weight",
                     "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 2:
            raise ConfigError("--batch-size must be >= 2 (the SSL loss standardises over the batch)")
        if self.channels % 2:
            raise ConfigError(f"--channels must be even, got {self.channels}")
        if self.order not in ("first", "second"):
            raise ConfigError(f"--order must be 'first' or 'second', got {self.order!r}")
        if self.supernet not in SUPERNETS:
            raise ConfigError(f"unknown --supernet {self.supernet!r} (known: {', '.join(SUPERNETS)})")
        if self.supernet == "sampled" and self.order == "second":
            raise ConfigError("--order second unrolls every op of every edge: it needs --supernet full")
        if self.strategy == "proxy":
            if not self.proxies or len(set(self.proxies)) != len(self.proxies):
                raise ConfigError(f"--proxies must list distinct proxy names, got {list(self.proxies)}")
            if self.proxy_samples < 1 or self.proxy_batch < 2:
                raise ConfigError("--proxy-samples must be >= 1 and --proxy-batch >= 2")
            if self.race is not None and (not isinstance(self.race, int) or isinstance(self.race, bool)
                                          or not 0 <= self.race <= self.proxy_samples):
                raise ConfigError(f"--race must be in 0..--proxy-samples ({self.proxy_samples}), got {self.race!r}")
            if self.race_from not in ("top", "sample"):
                raise ConfigError(f"--race-from must be 'top' or 'sample', got {self.race_from!r}")
            if self.race_by not in (None, *RACE_CHOICES) or self.race_by == RACE_CHOICES[1] and "naswot" not in self.proxies:
                raise ConfigError(f"--race-by must be one of {', '.join(RACE_CHOICES)} (rotation+naswot needs "
                                  f"naswot in --proxies), got {self.race_by!r}")
            if self.race_steps is not None and (not isinstance(self.race_steps, int) or isinstance(self.race_steps, bool)
                                                or self.race_steps < 3):
                raise ConfigError(f"--race-steps must be >= 3, got {self.race_steps!r}")
            if self.race and self.search_space != STAGES_SPACE:
                raise ConfigError(f"--race is measured on the {STAGES_SPACE} space only; the {self.search_space} "
                                  "candidates are ranked by the zero-cost proxies")
            if self.latency_ms is not None and self.search_space != STAGES_SPACE:  # refused rather than ignored
                raise ConfigError(f"--latency-ms with --strategy proxy needs the {STAGES_SPACE} space; the "
                                  f"{self.search_space} candidates fill the params and MACs budgets only")
        if self.recompute and self.strategy != "darts":  # refused rather than ignored
            raise ConfigError(f"--recompute checkpoints the edges of the DARTS supernet; --strategy {self.strategy} "
                              "trains no supernet")
        if not isinstance(self.arch_every, int) or self.arch_every < 0:
            raise ConfigError(f"--arch-every must be >= 0 (0: the supernet's default), got {self.arch_every!r}")
        if not 0 < self.tau_min <= self.tau_max:
            raise ConfigError(f"--tau-min and --tau-max must satisfy 0 < min <= max, got {self.tau_min}, "
                              f"{self.tau_max}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown --strategy {self.strategy!r} (available: {', '.join(STRATEGIES)})")
        if self.space != "auto" and self.space not in STRATEGY_SPACES[self.strategy]:
            raise ConfigError(f"--strategy {self.strategy} searches the space(s) "
                              f"{', '.join(STRATEGY_SPACES[self.strategy])}, not {self.space!r}")
        if self.search_space == STAGES_SPACE:
            cell_options = {"channels": 0, "cells": 0, "nodes": 3, "stem_multiplier": 3, "ops": DEFAULT_OPS}
            given = [k for k, v in cell_options.items() if getattr(self, k) != v]
            if given:  # refused rather than ignored: they shape the cell space, which this search does not use
                raise ConfigError(f"--{', --'.join(k.replace('_', '-') for k in given)} shape(s) the DARTS cell "
                                  f"space; the stage space ({STAGES_SPACE}) is sized by the budgets: use "
                                  f"--strategy darts, or --strategy proxy --space {SPACE_NAME}")
        self._check_ssl()
        if self.strategy == "evolve":
            self._check_evolve()
        elif self.curriculum:
            raise ConfigError("--curriculum is part of the evolve strategy (--strategy evolve)")
        if self.data not in ("synthetic", "cifar10", "imagefolder"):
            raise ConfigError(f"unknown --data {self.data!r} (synthetic, cifar10, imagefolder)")
        if self.data != "synthetic" and not self.data_root:
            raise ConfigError(f"--data {self.data} needs --data-root")
        if not 1 <= self.level <= 4:
            raise ConfigError(f"--level must be 1..4, got {self.level}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"--warmup-epochs must be in 0..epochs-1 ({self.epochs - 1}), got {self.warmup_epochs}")
        if self.device not in ("auto", "cpu", "cuda") and not self.device.startswith("cuda:"):
            raise ConfigError(f"--device must be auto, cpu or cuda[:N], got {self.device!r}")
        if not self.ops or len(set(self.ops)) != len(self.ops):
            raise ConfigError(f"--ops must list distinct op names, got {list(self.ops)}")
        if any(p <= 0 for p in self.projector):
            raise ConfigError(f"--projector widths must be positive, got {list(self.projector)}")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0 (0: PyTorch's default), got {self.threads}")
        if self.amp not in ("none", "bf16"):
            raise ConfigError(f"--amp must be none or bf16, got {self.amp!r}")
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        if not 0 <= self.latency_margin < 1:
            raise ConfigError(f"--latency-margin must be in [0, 1), got {self.latency_margin}")
        if self.latency_ms is not None and not self.latency_ms > 0:
            raise ConfigError(f"--latency-ms must be > 0, got {self.latency_ms}")
        if not isinstance(self.refine_epochs, int) or isinstance(self.refine_epochs, bool) or self.refine_epochs < 0:
            raise ConfigError(f"--refine-epochs must be >= 0, got {self.refine_epochs!r}")
        if self.refine_batch_size < 2:
            raise ConfigError("--refine-batch-size must be >= 2 (the SSL loss standardises over the batch)")
        if not self.refine_lr > 0:
            raise ConfigError(f"--refine-lr must be > 0, got {self.refine_lr}")
        if self.refine_subset is not None and self.refine_subset < self.refine_batch_size:
            raise ConfigError(f"--refine-subset {self.refine_subset} is smaller than --refine-batch-size "
                              f"{self.refine_batch_size}")
        if self.refine_epochs and self.strategy == "evolve":
            raise ConfigError("--refine-epochs continues a DARTS search's objective on the derived network; "
                              "the evolve strategy trains its network throughout the search")
        if self.latency_ms is not None and self.target is None and self.lut is None:
            raise ConfigError("--latency-ms needs --target (whose latency table is used) or --lut FILE")
        if self.latency_also:
            from edgenas.latency.files import parse_also

            parse_also(self.latency_also)
            if self.latency_ms is None or self.strategy != "proxy":
                raise ConfigError("--latency-also adds tables to the --latency-ms of --strategy proxy; give both")

    @property
    def ssl_parts(self) -> dict[str, float]:
        """``{objective: weight}`` of the combined SSL loss (weights default to 1)."""
        weights = dict(self.ssl_weights)
        return {name: float(weights.get(name, 1.0)) for name in self.ssl.split("+")}

    def _check_ssl(self) -> None:
        pairs = self.ssl_weights.items() if isinstance(self.ssl_weights, dict) else self.ssl_weights
        try:
            object.__setattr__(self, "ssl_weights", tuple(sorted((str(k), float(v)) for k, v in pairs)))
        except (TypeError, ValueError):
            raise ConfigError(f"--ssl-weights must map objectives to numbers, got {self.ssl_weights!r}") from None
        parts = self.ssl.split("+")
        unknown = [p for p in parts if p not in SSL_PARTS]
        if unknown or len(set(parts)) != len(parts):
            raise ConfigError(f"--ssl {self.ssl!r}: objectives are {', '.join(SSL_PARTS)}, joined by '+'")
        if parts == ["rotation"]:
            raise ConfigError("--ssl rotation is an auxiliary task: combine it, e.g. barlow+rotation")
        stray = [k for k, _ in self.ssl_weights if k not in parts]
        if stray:
            raise ConfigError(f"--ssl-weights names {stray[0]!r}, which --ssl {self.ssl!r} does not use")
        if any(w < 0 for _, w in self.ssl_weights):
            raise ConfigError("--ssl-weights must be >= 0")
        if self.strategy in ("darts", "proxy") and parts != ["barlow"] and parts != ["ntxent"]:
            raise ConfigError(f"--ssl {self.ssl} needs --strategy evolve (--strategy {self.strategy} trains with "
                              "barlow or ntxent)")
        if not self.ntxent_temperature > 0 or not self.dino_student_temp > 0 or not self.dino_teacher_temp > 0:
            raise ConfigError("SSL temperatures must be > 0")
        if not 0 <= self.dino_momentum < 1 or self.dino_momentum_schedule not in ("cosine", "constant"):
            raise ConfigError("--dino-momentum must lie in [0, 1) and its schedule be cosine or constant")
        if self.dino_out_dim < 2 or self.local_crops < 0:
            raise ConfigError("--dino-out-dim must be >= 2 and --local-crops >= 0")

    def _check_evolve(self) -> None:
        from edgenas.evolve.importance import CRITERIA
        from edgenas.evolve.schedule import CURRICULUM_MODES

        for name in ("seed_channels", "seed_blocks", "expansion", "max_blocks", "max_channels", "plateau_window",
                     "trial_steps", "trial_candidates"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if self.seed_blocks > self.max_blocks:
            raise ConfigError(f"--seed-blocks {self.seed_blocks} is more than --max-blocks {self.max_blocks}")
        if self.seed_channels > self.max_channels:
            raise ConfigError(f"--seed-channels {self.seed_channels} is more than --max-channels {self.max_channels}")
        if not self.widen_factor > 1:
            raise ConfigError(f"--widen-factor must be > 1, got {self.widen_factor}")
        if self.importance not in CRITERIA:
            raise ConfigError(f"unknown --importance {self.importance!r} (known: {', '.join(CRITERIA)})")
        if self.curriculum_mode not in CURRICULUM_MODES:
            raise ConfigError(f"unknown --curriculum-mode {self.curriculum_mode!r} "
                              f"(known: {', '.join(CURRICULUM_MODES)})")
        if not 0 < self.importance_mass <= 1 or self.sparsity < 0 or self.plateau_threshold < 0:
            raise ConfigError("--importance-mass must lie in (0, 1], --sparsity and --plateau-threshold >= 0")
        if self.min_steps_between_mutations < 0 or self.fitness_cost_weight < 0:
            raise ConfigError("--min-steps-between-mutations and --fitness-cost-weight must be >= 0")

    @property
    def search_subset(self) -> int:
        """How many images the search asks for: ``subset``, or :data:`RACE_SUBSET` for the proxy strategy's race
        on real images, :data:`DEFAULT_SUBSET` otherwise."""
        if self.subset is not None:
            return self.subset
        return RACE_SUBSET if self._races else DEFAULT_SUBSET

    @property
    def _races(self) -> bool:
        """Whether the search races (given enough images): ``--race N`` > 0, or by default on real images."""
        if self.strategy != "proxy" or self.search_space != STAGES_SPACE:
            return False
        return self.race > 0 if self.race is not None else self.data != "synthetic"

    def load_images(self, name: str | None = None, **options: Any):
        """The search's images of data set ``name`` (default ``--data``; training split, ``options`` passed on):
        ``--subset`` of them, or :attr:`search_subset` as a ceiling (every image when the set holds fewer)."""
        from edgenas.data.datasets import load_at_most, load_dataset

        name = name or self.data
        options.setdefault("level", self.level if name == "synthetic" else 1)
        load = load_dataset if self.subset is not None else load_at_most
        return load(name, None if name == "synthetic" else self.data_root, train=True, resolution=self.resolution,
                    size=self.search_subset, seed=self.seed, **options)

    def race_for(self, images: int, small: bool = False) -> int:
        """How many candidates the proxy strategy races with ``images`` unlabelled images: ``race``, else DEFAULT_RACE
        (``small`` candidates: SMALL_RACE) on the stage space and real data when ``images`` are enough, else 0."""
        from edgenas.search.race import HELD, MIN_TRAIN

        if self.race is not None:
            return self.race
        enough = self._races and images >= HELD + MIN_TRAIN
        return min(SMALL_RACE if small else DEFAULT_RACE, self.proxy_samples) if enough else 0

    def race_steps_for(self, small: bool = False) -> int:
        """Each raced candidate's rotation steps: ``race_steps``, else SMALL_RACE_STEPS (small) or DEFAULT_RACE_STEPS."""
        return self.race_steps if self.race_steps is not None else SMALL_RACE_STEPS if small else DEFAULT_RACE_STEPS

    def race_by_for(self, small: bool = False) -> str:
        """How the race chooses: ``race_by``, else rotation+naswot for small candidates (NASWOT scored), else rotation."""
        return self.race_by or RACE_CHOICES[1 if small and "naswot" in self.proxies else 0]

    @property
    def search_space(self) -> str:
        """The space searched: ``--space``, or the strategy's own."""
        return STRATEGY_SPACES[self.strategy][0] if self.space == "auto" else self.space

    @property
    def arch_interval(self) -> int:
        """Weight steps per architecture step: ``--arch-every``, else 1 (full supernet) or 2 (sampled: a step
        through a sampled path is cheap, and two of them would cost more than 2.5 derived-network steps)."""
        return self.arch_every or (2 if self.supernet == "sampled" else 1)

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = config_to_dict(self)
        d["ssl_weights"] = dict(self.ssl_weights)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        """Build from a plain dict (YAML experiment file, ``config.yaml``).

        Raises:
            ConfigError: unknown keys (with close matches) or invalid values.
        """
        return config_from_dict(cls, data, "search", RETIRED_OPTIONS)

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)

    @property
    def recomputes(self) -> bool:
        """Whether the DARTS supernet recomputes its edges: ``recompute``, or by default the sampled supernet."""
        return self.supernet == "sampled" if self.recompute is None else self.recompute

    def identity(self) -> dict[str, Any]:
        """The options that define the search (what a resume must match)."""
        d = self.to_dict()
        for k in RESUMABLE_CHANGES | REFINE_OPTIONS:
            d.pop(k, None)
        if d.get("space") == "auto":
            if self.strategy == "proxy":  # its auto space changed (to stages-cnn): the space searched decides
                d["space"] = self.search_space
            else:  # added later: runs from before it keep their identity
                d.pop("space")
        return d
