"""benchmarks/rotation_proxy.py: the label-free trained proxy is reproducible and reads no label."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "rotation_proxy.py"


@pytest.fixture(scope="module")
def module():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("rotation_proxy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_rotation_score_is_reproducible_and_label_free(module):
    from edgenas.space.stages import Stage, StageSpec
    from edgenas.train.data import load_protocol_data

    data = load_protocol_data("synthetic", None, 32, synthetic_size=1200, cache=False)
    # images and channel statistics only: a proxy that read a label would fail on the missing attribute
    data = SimpleNamespace(pool=SimpleNamespace(images=data.pool.images), mean=data.mean, std=data.std)
    net = StageSpec(stem_channels=0, stages=(Stage(8, 3, True, 0), Stage(16, 3, True, 1)), resolution=32,
                    num_classes=10)
    first = module.rotation_score(net, data, steps=6, batch=16, lr=0.05, seed=0)
    again = module.rotation_score(net, data, steps=6, batch=16, lr=0.05, seed=0)
    assert set(first) == {"rot_acc_2", "rot_acc_4", "rot_acc_6", "seconds"}
    assert all(0 <= first[k] <= 100 for k in ("rot_acc_2", "rot_acc_4", "rot_acc_6"))
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in again.items() if k != "seconds"}
