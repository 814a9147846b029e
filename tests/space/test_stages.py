"""The stage space: the spec's analytic cost, its arch.json, bad specs, the sampler that fills the budgets."""

from __future__ import annotations

import json
import random

import pytest
import torch

from edgenas.errors import ArchSpecError, BudgetError
from edgenas.models import build
from edgenas.models.cnns import FastCNN, fast_cnn_spec
from edgenas.profiler import count_macs, count_params
from edgenas.space.registry import load_spec, spec_from_dict
from edgenas.space.stage_sampling import FILL, fill_stages, random_stages, sample_stage_specs
from edgenas.space.stages import STAGES_SPACE, Stage, StageSpec


def _deployable_cost(spec: StageSpec, resolution: int) -> tuple[int, int]:
    net = build(spec).deployable().eval()
    return count_params(net), count_macs(net, resolution)


@pytest.mark.parametrize("seed", range(6))
def test_the_analytic_cost_is_what_the_profiler_counts(seed):
    spec = random_stages(random.Random(seed), resolution=32)
    assert spec.cost() == _deployable_cost(spec, 32)


def test_a_stem_unpooled_stages_and_no_classifier_are_counted_too():
    spec = StageSpec(stem_channels=16, stages=(Stage(24, 5, False, 2), Stage(32, 3, True, 0)), resolution=16,
                     num_classes=0)
    assert spec.cost() == _deployable_cost(spec, 16)
    out = build(spec).deployable()(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 32)


def test_fast_cnn_is_a_point_of_the_space():
    spec = fast_cnn_spec()
    assert spec.cost() == (986_698, 74_982_816)
    assert count_params(FastCNN()) == 986_698
    assert spec.describe() == "stem 0 | 64k3p r1 | 128k3p r1 | 144k3p r1"


def test_arch_json_round_trips_and_is_recognised_by_its_space(tmp_path):
    spec = StageSpec(stem_channels=8, stages=(Stage(16, 3, True, 1), Stage(40, 5, True, 2)), projector=(32, 16))
    path = tmp_path / "arch.json"
    spec.save(path)
    data = json.loads(path.read_text())
    assert data["space"] == STAGES_SPACE
    assert load_spec(path) == spec == spec_from_dict(data)
    assert load_spec(path).sha256() == spec.sha256()


@pytest.mark.parametrize("change, message", [
    (dict(stages=()), "1..12 stages"),
    (dict(stages=(Stage(16),) * 13), "1..12 stages"),
    (dict(stem_channels=-1), "stem_channels"),
    (dict(resolution=6, stages=(Stage(8), Stage(8))), "resolution must stay even"),
    (dict(num_classes=-2), "num_classes"),
])
def test_bad_specs_are_refused(change, message):
    base = dict(stem_channels=0, stages=(Stage(16),))
    with pytest.raises(ArchSpecError, match=message):
        StageSpec(**{**base, **change})


@pytest.mark.parametrize("stage, message", [
    (dict(width=0), "width"),
    (dict(width=16, kernel=7), "kernel"),
    (dict(width=16, residual=5), "residual"),
    (dict(width=16, pool="yes"), "pool"),
])
def test_bad_stages_are_refused(stage, message):
    with pytest.raises(ArchSpecError, match=message):
        Stage(**stage)


def test_a_corrupt_arch_json_is_one_clear_error(tmp_path):
    path = tmp_path / "arch.json"
    path.write_text(json.dumps({"space": STAGES_SPACE, "stem_channels": 0, "stages": [{"width": "wide"}]}))
    with pytest.raises(ArchSpecError):
        load_spec(path)


def test_samples_fill_the_binding_budget_and_are_seeded_and_distinct():
    specs = sample_stage_specs(8, seed=1, max_params=1_000_000, max_macs=100_000_000)
    assert specs == sample_stage_specs(8, seed=1, max_params=1_000_000, max_macs=100_000_000)
    assert len({s.sha256() for s in specs}) == 8
    for spec in specs:
        params, macs = spec.cost()
        assert params <= FILL * 1_000_000 and macs <= FILL * 100_000_000
        # widths round to multiples of 8, so a sample sits a step below the fill, never far below it
        assert max(params / 1_000_000, macs / 100_000_000) > 0.6 * FILL


def test_fill_respects_an_extra_test_such_as_a_latency_budget():
    shape = random_stages(random.Random(0))
    free = fill_stages(shape, 1_000_000, 100_000_000)
    capped = fill_stages(shape, 1_000_000, 100_000_000, fits=lambda s: s.cost()[1] <= 20_000_000)
    assert capped.cost()[1] <= 20_000_000 < free.cost()[1]


def test_a_budget_no_network_meets_is_a_budget_error():
    with pytest.raises(BudgetError, match="stage space"):
        sample_stage_specs(2, seed=0, max_params=300, max_macs=100_000_000)


def test_single_stages_widen_into_the_budget_the_common_factor_left():
    from edgenas.space.stage_sampling import _widen_stages

    spec = StageSpec(stem_channels=16, stages=(Stage(32, 3, False, 1), Stage(48, 3, True, 2), Stage(56, 3, True, 2),
                                               Stage(72, 3, True, 1)))
    wide = _widen_stages(spec, 1_000_000, 100_000_000, FILL, None)
    (p0, m0), (p1, m1) = spec.cost(), wide.cost()
    assert p1 > p0 and m1 > m0 and p1 <= FILL * 1_000_000 and m1 <= FILL * 100_000_000
    assert all(w.width >= s.width for w, s in zip(wide.stages, spec.stages))
    # no single stage could take 8 more channels
    for i in range(len(wide.stages)):
        stages = list(wide.stages)
        stages[i] = Stage(stages[i].width + 8, stages[i].kernel, stages[i].pool, stages[i].residual)
        params, macs = StageSpec(stem_channels=16, stages=tuple(stages)).cost()
        assert params > FILL * 1_000_000 or macs > FILL * 100_000_000
