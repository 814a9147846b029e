"""When to mutate and what data to show: plateau detection and the curriculum (pure functions and values)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edgenas.errors import ConfigError

__all__ = ["CURRICULUM_MODES", "Curriculum", "plateaued"]

CURRICULUM_MODES = ("epochs", "plateau")


def plateaued(losses: Sequence[float], window: int, threshold: float) -> bool:
    """Whether the loss stopped improving: the mean of the last ``window`` values is less than ``threshold``
    (relative) below the mean of the ``window`` before them. False until ``2 * window`` values exist.

    Example:
        >>> plateaued([10, 9, 8, 7, 6.9, 6.9, 6.8, 6.9], window=2, threshold=0.05)
        True
    """
    if window < 1:
        raise ConfigError(f"plateau window must be >= 1, got {window}")
    if len(losses) < 2 * window:
        return False
    last = float(np.mean(losses[-window:]))
    before = float(np.mean(losses[-2 * window:-window]))
    return (before - last) < threshold * abs(before)


@dataclass(frozen=True)
class Curriculum:
    """The synthetic difficulty levels in order (1 plain shapes ... 4 occlusion), advanced by epoch or on plateau.

    ``mode="epochs"``: the levels share the epochs evenly. ``mode="plateau"``:
    the next level starts when the loss plateaus (before any mutation is tried).
    """

    levels: tuple[int, ...] = (1, 2, 3, 4)
    mode: str = "epochs"

    def __post_init__(self) -> None:
        if self.mode not in CURRICULUM_MODES:
            raise ConfigError(f"unknown curriculum mode {self.mode!r} (known: {', '.join(CURRICULUM_MODES)})")
        if not self.levels or any(not 1 <= lv <= 4 for lv in self.levels):
            raise ConfigError(f"curriculum levels must be in 1..4, got {self.levels}")

    def stage_at_epoch(self, epoch: int, epochs: int) -> int:
        """The stage (index into ``levels``) of ``epoch`` in ``mode="epochs"``."""
        return min(len(self.levels) - 1, epoch * len(self.levels) // max(epochs, 1))

    def level(self, stage: int) -> int:
        return self.levels[min(stage, len(self.levels) - 1)]

    def last(self, stage: int) -> bool:
        return stage >= len(self.levels) - 1
