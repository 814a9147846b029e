"""A tiny searched network (and its run directory) for the exporter tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgenas.space.spec import ArchSpec, CellGenotype, Edge

RES = 16
CLASSES = ("a", "b", "c", "d")


def tiny_spec() -> ArchSpec:
    """Two cells (the second reduces, so a factorized reduction feeds the next), 16x16 input, 4 classes."""
    normal = CellGenotype(((Edge("ds_conv", 0), Edge("se", 1)), (Edge("irb_e3", 1), Edge("identity", 2))))
    reduce = CellGenotype(((Edge("ds_conv_se", 0), Edge("irb_e3", 1)), (Edge("identity", 2), Edge("ds_conv", 1))))
    return ArchSpec(normal, reduce, channels=4, num_cells=3, reduction_cells=(1,), stem_channels=8,
                    resolution=RES, num_classes=len(CLASSES), projector=(8,),
                    extra=(("classes", ",".join(CLASSES)), ("mean", "0.5,0.5,0.5"), ("std", "0.25,0.25,0.25")))


def randomize_batch_norm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every batch norm non-trivial statistics, so that folding them is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


@pytest.fixture(name="tiny_spec", scope="session")
def tiny_spec_fixture() -> ArchSpec:
    return tiny_spec()


@pytest.fixture(name="randomize_bn", scope="session")
def randomize_bn_fixture():
    """:func:`randomize_batch_norm`, for tests that build their own networks."""
    return randomize_batch_norm


@pytest.fixture(scope="session")
def tiny_net():
    """The tiny DerivedNet (projector kept: the export must drop it via ``deployable``), eval mode."""
    from edgenas.models import build

    torch.manual_seed(0)
    return randomize_batch_norm(build(tiny_spec())).eval()


@pytest.fixture(scope="session")
def tiny_inputs() -> np.ndarray:
    """[40, 3, 16, 16] float32 standard normal inputs (already 'normalised')."""
    return np.random.default_rng(1).standard_normal((40, 3, RES, RES)).astype(np.float32)


@pytest.fixture
def tiny_run(tmp_path, tiny_net):
    """A run directory: arch.json, weights.pt, config.yaml (synthetic data)."""
    run = tmp_path / "run"
    run.mkdir()
    tiny_spec().save(run / "arch.json")
    torch.save(tiny_net.state_dict(), run / "weights.pt")
    (run / "config.yaml").write_text(json.dumps({"data": "synthetic", "data_root": None, "seed": 0, "level": 1,
                                                 "resolution": RES}))
    return run
