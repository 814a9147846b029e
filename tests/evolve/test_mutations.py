"""GROW and WIDEN keep the network's function (eval and train mode), carry the optimiser state; PRUNE slices."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgenas.errors import ArchSpecError, ConfigError
from edgenas.evolve.mutations import (
    Mutation,
    apply_mutation,
    carry_optimizer_state,
    grow,
    prune_hidden,
    widen_group,
    widen_hidden,
)
from edgenas.models import build
from edgenas.space.evolved import BlockSpec, EvolvedSpec
from edgenas.space.registry import load_spec, spec_from_dict

SEED = EvolvedSpec(stem_channels=8, blocks=(BlockSpec(8, 24, 2), BlockSpec(8, 24, 1), BlockSpec(16, 32, 2)),
                   resolution=16, num_classes=5, projector=(12, 6))


class Model(nn.Module):
    """The search's view: the network under ``net.`` and a head reading its pooled features."""

    def __init__(self, spec: EvolvedSpec) -> None:
        super().__init__()
        self.net = build(spec)
        self.head = nn.Linear(spec.feature_dim, 3)

    def forward(self, x):
        f = self.net.features(x)
        return torch.cat([self.net.classifier(f), self.net.projector(f), self.head(f)], 1)


CONSUMERS = ("net.classifier.weight", "net.projector.0.weight", "head.weight")


def _model(spec=SEED, seed=0) -> Model:
    torch.manual_seed(seed)
    model = Model(spec)
    with torch.no_grad():  # non-trivial batch-norm statistics and affine parameters
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


def _rebuilt(result) -> Model:
    model = Model(result.spec)
    model.load_state_dict(result.state)
    return model


MUTATIONS = [Mutation("widen", 0, 12), Mutation("widen", 1, 13), Mutation("widen", 3, 24),
             Mutation("widen_hidden", 1, 40), Mutation("grow", 0, 16), Mutation("grow", 2, 24),
             Mutation("grow", 3, 48)]


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: f"{m.kind}-{m.where}-{m.width}")
@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_function_preserved(mutation, train):
    model = _model()
    x = torch.randn(6, 3, 16, 16)
    result = apply_mutation(SEED, model.state_dict(), mutation, np.random.default_rng(1), CONSUMERS)
    new = _rebuilt(result)
    model.train(train)
    new.train(train)
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x), rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in new.parameters()) > sum(p.numel() for p in model.parameters())


def test_groups_follow_residual_sums():
    assert SEED.groups() == [0, 1, 1, 3] and [SEED.residual(i) for i in range(3)] == [False, True, False]
    wide = widen_group(SEED, _model().state_dict(), 1, 13, np.random.default_rng(0), CONSUMERS).spec
    assert [b.out for b in wide.blocks] == [13, 13, 16] and wide.residual(1)
    grown = grow(SEED, _model().state_dict(), 2, 24).spec
    assert len(grown.blocks) == 4 and grown.blocks[2] == BlockSpec(8, 24, 1) and grown.groups() == [0, 1, 1, 1, 4]


def test_widened_copies_learn_apart():
    """Unequal shares of the copied channels' consumers give the copies different gradients."""
    model = _model()
    result = widen_hidden(SEED, model.state_dict(), 0, 48, np.random.default_rng(0))
    new = _rebuilt(result)
    new(torch.randn(8, 3, 16, 16)).square().sum().backward()
    g = new.net.blocks[0].pw1.weight.grad
    index = result.transforms["net.blocks.0.pw1.weight"].steps[0][1]
    copy = 24 + int(torch.nonzero(index[24:] == index[24]).squeeze(1)[0])
    assert not torch.allclose(g[int(index[24])], g[copy])


def test_optimizer_state_survives():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3, 16, 16)).sum().backward()
    opt.step()
    result = widen_group(SEED, model.state_dict(), 3, 24, np.random.default_rng(0), CONSUMERS)
    new = _rebuilt(result)
    new_opt = torch.optim.SGD(new.parameters(), lr=0.1, momentum=0.9)
    names = {id(p): k for k, p in model.named_parameters()}
    carried = carry_optimizer_state(opt, names, new_opt, dict(new.named_parameters()), result.transforms)
    assert carried == len(list(model.parameters()))
    old_buf = opt.state[model.net.blocks[2].pw2.weight]["momentum_buffer"]
    new_buf = new_opt.state[new.net.blocks[2].pw2.weight]["momentum_buffer"]
    assert new_buf.shape[0] == 24 and torch.equal(new_buf[:16], old_buf)
    # a grown block's parameters are new: no state; the shifted ones keep theirs
    grown = grow(SEED, model.state_dict(), 1, 16)
    g = _rebuilt(grown)
    g_opt = torch.optim.SGD(g.parameters(), lr=0.1, momentum=0.9)
    carry_optimizer_state(opt, names, g_opt, dict(g.named_parameters()), grown.transforms)
    assert g.net.blocks[1].pw1.weight not in g_opt.state
    assert torch.equal(g_opt.state[g.net.blocks[2].pw1.weight]["momentum_buffer"],
                       opt.state[model.net.blocks[1].pw1.weight]["momentum_buffer"])


def test_prune_removes_channels():
    model = _model()
    keep = torch.zeros(24, dtype=torch.bool)
    keep[[0, 3, 7]] = True
    result = prune_hidden(SEED, model.state_dict(), 1, keep)
    assert result.spec.blocks[1].hidden == 3
    new = _rebuilt(result)
    assert new.net.blocks[1].dw.weight.shape[0] == 3
    # zero the other channels' scale in the original: the pruned network computes the same
    with torch.no_grad():
        model.net.blocks[1].bn2.weight[~keep] = 0
        model.net.blocks[1].bn2.bias[~keep] = 0
    model.eval()
    new.eval()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(new(x), model(x), rtol=1e-5, atol=1e-5)


def test_spec_round_trip_and_errors(tmp_path):
    SEED.save(tmp_path / "arch.json")
    assert load_spec(tmp_path) == SEED and load_spec(tmp_path / "arch.json").sha256() == SEED.sha256()
    with pytest.raises(ArchSpecError, match="unknown space"):
        spec_from_dict({"space": "transformer"})
    with pytest.raises(ArchSpecError, match="stride must be 1 or 2"):
        BlockSpec(8, 8, 3)
    with pytest.raises(ArchSpecError, match="resolution must stay even"):
        EvolvedSpec(8, (BlockSpec(8, 8, 2),) * 3, resolution=12)
    with pytest.raises(ConfigError, match="more channels"):
        widen_group(SEED, _model().state_dict(), 0, 8, np.random.default_rng(0))
    with pytest.raises(ConfigError, match="no channel group 2"):
        widen_group(SEED, _model().state_dict(), 2, 32, np.random.default_rng(0))
