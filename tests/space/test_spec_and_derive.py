import dataclasses
import json

import pytest
import torch

from edgenas.errors import ArchSpecError, ConfigError
from edgenas.models import build, load
from edgenas.search.derive import (
    derive_genotype,
    one_hot_alphas,
    spec_from_supernet,
    transfer_weights,
)
from edgenas.space import ArchSpec, Edge
from edgenas.space.cells import edge_index, num_edges
from edgenas.space.network import DARTSAutoSSL, reduction_positions


def _trained_supernet(seed=0, **kw):
    torch.manual_seed(seed)
    net = DARTSAutoSSL(**{"C": 6, "num_cells": 3, "nodes": 3, "projector": (32, 16), **kw})
    # a few train-mode forwards give non-trivial BN running statistics
    net.train()
    with torch.no_grad():
        net.alpha_normal.normal_(0, 1)
        net.alpha_reduce.normal_(0, 1)
        for _ in range(3):
            net(torch.randn(8, 3, 16, 16))
    return net


def test_supernet_shapes_and_parameter_groups():
    net = DARTSAutoSSL(C=4, num_cells=3, nodes=2, projector=(8, 8))
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 8)
    assert net.alpha_normal.shape == (num_edges(2), 7)
    arch = {id(p) for p in net.arch_parameters()}
    assert all(id(p) not in arch for p in net.weight_parameters())
    assert len(net.weight_parameters()) + 2 == len(list(net.parameters()))


def test_reduction_positions():
    assert reduction_positions(8) == (2, 5)
    assert reduction_positions(3) == (1, 2)
    assert reduction_positions(2) == (1,)
    assert reduction_positions(1) == ()


def test_bad_supernet_options():
    with pytest.raises(ConfigError):
        DARTSAutoSSL(C=5)
    with pytest.raises(ConfigError):
        DARTSAutoSSL(C=4, op_names=("zero",))


def test_expand_channels_keeps_alphas():
    net = _trained_supernet()
    wide = net.expand_channels(2.0)
    assert wide.C == 12 and torch.equal(wide.alpha_normal, net.alpha_normal)
    assert wide(torch.randn(2, 3, 16, 16)).shape == (2, 16)


def test_derive_genotype_picks_top2_nonzero_edges():
    ops = ("zero", "identity", "ds_conv")
    w = torch.full((num_edges(2), 3), 0.1)
    # node 0 (inputs 0, 1): zero dominates input 0 but is never kept
    w[edge_index(0, 0)] = torch.tensor([0.9, 0.05, 0.05])
    w[edge_index(0, 1)] = torch.tensor([0.2, 0.7, 0.1])
    # node 1 (inputs 0, 1, 2): strongest non-zero on inputs 2 and 0
    w[edge_index(1, 0)] = torch.tensor([0.1, 0.1, 0.8])
    w[edge_index(1, 1)] = torch.tensor([0.5, 0.3, 0.2])
    w[edge_index(1, 2)] = torch.tensor([0.0, 0.6, 0.4])
    g = derive_genotype(w, ops, nodes=2)
    assert g.nodes[0] == (Edge("identity", 0), Edge("identity", 1))
    assert g.nodes[1] == (Edge("ds_conv", 0), Edge("identity", 2))


def test_spec_json_round_trip_and_model():
    net = _trained_supernet()
    spec = spec_from_supernet(net, resolution=16, num_classes=5)
    again = ArchSpec.from_json(spec.to_json())
    assert again == spec and hash(again) == hash(spec) and again.sha256() == spec.sha256()
    model = build(again)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert model.project(torch.randn(2, 3, 16, 16)).shape == (2, 16)
    assert model.deployable().projector is None and model.projector is not None


def test_weight_preservation_one_hot_alphas_give_identical_outputs():
    """With one-hot alphas the supernet computes exactly the derived network."""
    net = _trained_supernet()
    spec = spec_from_supernet(net, resolution=16, num_classes=10)
    derived = transfer_weights(net, spec)
    one_hot_alphas(net, spec)
    net.eval()
    derived.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(derived.features(x), net.features(x), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(derived.project(x), net(x), rtol=1e-5, atol=1e-6)


def test_preserved_weights_are_the_supernet_weights():
    net = _trained_supernet()
    spec = spec_from_supernet(net, resolution=16, num_classes=10)
    derived = transfer_weights(net, spec)
    assert torch.equal(derived.stem[0].weight, net.stem[0].weight)
    e = spec.normal.nodes[0][0]
    k = net.op_names.index(e.op)
    src = dict(net.cells[0].edges[edge_index(0, e.input)].ops[k].named_parameters())
    dst = dict(derived.cells[0].edges[str(edge_index(0, e.input))].named_parameters())
    for name, p in src.items():
        assert torch.equal(dst[name], p)


def test_spec_files(tmp_path):
    net = _trained_supernet()
    spec = spec_from_supernet(net, resolution=16, num_classes=10)
    spec.save(tmp_path / "arch.json")
    derived = transfer_weights(net, spec)
    torch.save(derived.state_dict(), tmp_path / "weights.pt")
    model = load(tmp_path)
    x = torch.randn(2, 3, 16, 16)
    model.eval()
    derived.eval()
    with torch.no_grad():
        assert torch.equal(model(x), derived(x))
    assert ArchSpec.load(tmp_path / "arch.json") == spec


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["normal"][0].__setitem__(0, ["no_such_op", 0]), "unknown op"),
    (lambda d: d["normal"][0].__setitem__(0, ["ds_conv", 7]), "input 7"),
    (lambda d: d["normal"][0].__setitem__(0, ["zero", 0]), "zero"),
    (lambda d: d.__setitem__("channels", -4), "channels"),
    (lambda d: d.__setitem__("bogus", 1), "unknown fields"),
    (lambda d: d.__setitem__("resolution", 18), "divisible"),
    (lambda d: d.pop("reduce"), "lacks"),
])
def test_bad_specs(mutate, message):
    spec = spec_from_supernet(_trained_supernet(), resolution=16, num_classes=10)
    d = json.loads(spec.to_json())
    mutate(d)
    with pytest.raises(ArchSpecError, match=message):
        ArchSpec.from_dict(d)


def test_bad_spec_files(tmp_path):
    with pytest.raises(ArchSpecError, match="no arch.json"):
        ArchSpec.load(tmp_path)
    (tmp_path / "arch.json").write_text("{not json")
    with pytest.raises(ArchSpecError, match="not valid JSON"):
        ArchSpec.load(tmp_path)


def test_with_width():
    spec = spec_from_supernet(_trained_supernet(), resolution=16, num_classes=10)
    wide = spec.with_width(2)
    assert wide.channels == 12 and wide.stem_channels == 36 and wide.normal == spec.normal
    assert build(wide)(torch.randn(1, 3, 16, 16)).shape == (1, 10)
    assert dataclasses.replace(spec, num_classes=0).num_classes == 0


def test_corrupt_weights_file_is_a_checkpoint_error(tmp_path):
    from edgenas.errors import CheckpointError

    spec = spec_from_supernet(_trained_supernet(), resolution=16, num_classes=10)
    spec.save(tmp_path / "arch.json")
    (tmp_path / "weights.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot load weights"):
        load(tmp_path)
