"""One seed from several integers (run seed, epoch, step, ...): reproducible, independent streams."""

from __future__ import annotations

import numpy as np

__all__ = ["derive_seed"]


def derive_seed(*parts: int) -> int:
    """A 32-bit seed that depends on every part, through numpy's SeedSequence (no collisions of sums)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])
