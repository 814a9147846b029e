"""The search configuration: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from edgenas.configs import config_from_dict, config_to_dict
from edgenas.errors import ConfigError
from edgenas.space.ops import DEFAULT_OPS

#: Fields that may differ between a checkpoint and the command that resumes it.
RESUMABLE_CHANGES = frozenset({"out", "device", "threads", "checkpoint_every", "progress"})


@dataclass(frozen=True)
class SearchConfig:
    """Every option of ``edgenas search`` (written to ``config.yaml`` as used).

    Budgets are for the deployable network (backbone + classifier, without the SSL
    projector) at ``resolution``; MACs are multiply-accumulates of one image.
    """

    out: str = "runs/search"
    target: str | None = None
    strategy: str = "darts"
    # data
    data: str = "synthetic"
    data_root: str | None = None
    subset: int = 1024
    level: int = 2
    resolution: int = 32
    # space
    channels: int = 8
    cells: int = 3
    nodes: int = 3
    stem_multiplier: int = 3
    ops: tuple[str, ...] = DEFAULT_OPS
    plugins: tuple[str, ...] = ()
    projector: tuple[int, ...] = (128, 128)
    # objective
    ssl: str = "barlow"
    bt_lambda: float = 0.005
    # optimisation
    epochs: int = 4
    batch_size: int = 32
    accum_steps: int = 1
    order: str = "first"
    lr: float = 0.05
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 6e-3
    arch_weight_decay: float = 1e-3
    warmup_epochs: int = 0
    # budgets
    max_params: int = 1_000_000
    max_macs: int = 100_000_000
    latency_ms: float | None = None
    latency_margin: float = 0.05
    lut: str | None = None
    cost_weight: float = 1.0
    # run
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    checkpoint_every: int = 10
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        positive = ("subset", "resolution", "channels", "cells", "nodes", "stem_multiplier", "epochs",
                    "batch_size", "accum_steps", "max_params", "max_macs", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")
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
        if self.strategy != "darts":
            raise ConfigError(f"unknown --strategy {self.strategy!r} (available: darts)")
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
        if self.seed < 0:
            raise ConfigError(f"--seed must be >= 0, got {self.seed}")
        if not 0 <= self.latency_margin < 1:
            raise ConfigError(f"--latency-margin must be in [0, 1), got {self.latency_margin}")
        if self.latency_ms is not None and not self.latency_ms > 0:
            raise ConfigError(f"--latency-ms must be > 0, got {self.latency_ms}")
        if self.latency_ms is not None and self.target is None and self.lut is None:
            raise ConfigError("--latency-ms needs --target (whose latency table is used) or --lut FILE")

    # --- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        """Build from a plain dict (YAML experiment file, ``config.yaml``).

        Raises:
            ConfigError: unknown keys (with close matches) or invalid values.
        """
        return config_from_dict(cls, data, "search")

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)

    def identity(self) -> dict[str, Any]:
        """The options that define the search (what a resume must match)."""
        d = self.to_dict()
        for k in RESUMABLE_CHANGES | {"extra"}:
            d.pop(k, None)
        return d
