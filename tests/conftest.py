"""Shared fixtures: tiny search configs that run in seconds on 2 CPU cores."""

from __future__ import annotations

import pytest
import torch

# The tests' networks are tiny: with two OpenMP threads every small op pays a
# synchronisation cost, which is 10-20x slower than one thread when the other
# core is busy (measured: 2.0 s vs 0.1 s for one step of the tiny search).
torch.set_num_threads(1)


@pytest.fixture
def tiny_search_options() -> dict:
    """Options of a search small enough for unit tests (a few seconds)."""
    return dict(subset=96, resolution=16, channels=4, cells=2, nodes=2, projector=(16, 16), epochs=2,
                batch_size=8, checkpoint_every=2, progress=False, seed=3)
