import dataclasses

import pytest
import torch

from edgenas.errors import BudgetError
from edgenas.models import build
from edgenas.profiler import count_macs, count_params
from edgenas.search.cost import CostModel, check_feasible, repair
from edgenas.search.derive import spec_from_supernet
from edgenas.space.network import DARTSAutoSSL


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = DARTSAutoSSL(C=8, num_cells=3, nodes=3, projector=(32, 32))
    with torch.no_grad():
        net.alpha_normal.normal_(0, 1)
        net.alpha_reduce.normal_(0, 1)
    spec = spec_from_supernet(net, resolution=32, num_classes=10)
    return net, spec, CostModel(spec, net.op_names)


def _measured(spec):
    model = build(dataclasses.replace(spec, projector=()))
    return count_params(model), count_macs(model, spec.resolution)


def test_cost_tables_are_exact(setup):
    net, spec, cm = setup
    cost = cm.genotype_cost(spec.normal, spec.reduce)
    assert (cost.params, cost.macs) == _measured(spec)
    normal, reduce, cheapest = cm.cheapest(10**6, 10**8)
    assert (cheapest.params, cheapest.macs) == _measured(dataclasses.replace(spec, normal=normal, reduce=reduce))


def test_expected_cost_is_differentiable_and_between_extremes(setup):
    net, spec, cm = setup
    params, macs = cm.expected(*net.arch_weights())
    (params / 1e6 + macs / 1e8).backward()
    assert net.alpha_normal.grad is not None and net.alpha_normal.grad.abs().sum() > 0
    _, _, cheapest = cm.cheapest(10**6, 10**8)
    assert cheapest.macs <= float(macs.detach())


def test_impossible_budget_is_refused(setup):
    _, _, cm = setup
    with pytest.raises(BudgetError, match="no network in this space meets the budget"):
        check_feasible(cm, 1000, 10**8)


def test_repair_brings_a_network_within_budget(setup):
    net, spec, cm = setup
    wn, wr = net.arch_weights()
    big = cm.genotype_cost(spec.normal, spec.reduce)
    _, _, small = cm.cheapest(10**6, 10**8)
    budget_macs = (big.macs + small.macs) // 2
    normal, reduce, log = repair(cm, spec.normal, spec.reduce, wn, wr, 10**6, budget_macs)
    assert log
    fixed = dataclasses.replace(spec, normal=normal, reduce=reduce)
    params, macs = _measured(fixed)
    assert macs <= budget_macs
    # nothing to do when already within budget
    assert repair(cm, spec.normal, spec.reduce, wn, wr, 10**7, 10**10)[2] == []


def test_repair_fails_clearly_when_impossible(setup):
    net, spec, cm = setup
    with pytest.raises(BudgetError):
        repair(cm, spec.normal, spec.reduce, *net.arch_weights(), 10, 10)
