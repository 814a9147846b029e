"""Search at the size you deploy: the sampled supernet, the layout chosen from the budgets, the widening that
fills them, the zero-cost proxies and the proxy strategy."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

from edgenas.cli.main import cli
from edgenas.errors import BudgetError, ConfigError
from edgenas.latency.keys import Layout
from edgenas.latency.spaces import sample_specs
from edgenas.models import build, load
from edgenas.profiler import count_macs, count_params
from edgenas.rundir import read_jsonl
from edgenas.search.config import SearchConfig
from edgenas.search.darts import DartsSearch
from edgenas.search.derive import spec_from_supernet, transfer_weights
from edgenas.search.runner import run_search
from edgenas.space.cells import edge_index
from edgenas.space.network import DARTSAutoSSL
from edgenas.space.ops import DENSE_OPS, LIGHT_OPS

TINY = dict(strategy="darts", subset=96, resolution=16, nodes=2, projector=(16, 16), epochs=2, batch_size=8,
            checkpoint_every=2, progress=False, seed=3)
#: the same, of the stage space (sized by the budgets: no cell options)
STAGES_TINY = {k: v for k, v in TINY.items() if k not in ("strategy", "nodes")}
#: budgets a 16 px network of a few cells fills
SMALL = dict(max_params=40_000, max_macs=4_000_000)
ALL_OPS = ("zero", *[o for o in LIGHT_OPS + DENSE_OPS if o != "zero"])


def _supernet() -> DARTSAutoSSL:
    torch.manual_seed(0)
    net = DARTSAutoSSL(C=4, num_cells=3, nodes=2, op_names=ALL_OPS, projector=(16, 16))
    with torch.no_grad():
        net.alpha_normal.normal_()
        net.alpha_reduce.normal_()
    net.train()
    net(torch.randn(8, 3, 16, 16))  # batch statistics that differ from a fresh network's
    return net


def test_a_sampled_path_of_the_derived_ops_computes_the_derived_network():
    """Weight preservation is exact: the derived network is the supernet run on its own path."""
    net = _supernet()
    spec = spec_from_supernet(net, resolution=16, num_classes=10)
    derived = transfer_weights(net, spec)
    paths = torch.zeros(len(net.cells), net.alpha_normal.shape[0], len(ALL_OPS))
    paths[..., ALL_OPS.index("zero")] = 1.0  # edges the derivation dropped contribute nothing
    for c, cell in enumerate(net.cells):
        genotype = spec.reduce if cell.reduction else spec.normal
        for i, node in enumerate(genotype.nodes):
            for e in node:
                paths[c, edge_index(i, e.input)] = 0.0
                paths[c, edge_index(i, e.input), ALL_OPS.index(e.op)] = 1.0
    net.eval()
    derived.eval()
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(derived.project(x), net(x, paths), rtol=1e-5, atol=1e-6)


def test_sampled_paths_are_one_hot_seeded_and_reach_every_alpha():
    net = _supernet()
    a = net.sample_paths(2.0, torch.Generator().manual_seed(5))
    b = net.sample_paths(2.0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(a.detach().sum(-1), torch.ones(a.shape[:2]))
    assert set(a.detach().unique().tolist()) == {0.0, 1.0}
    out = net(torch.randn(4, 3, 16, 16), a).pow(2).sum()
    out.backward()
    assert net.alpha_normal.grad is not None and (net.alpha_normal.grad != 0).float().mean() > 0.5
    assert net.alpha_reduce.grad is not None and net.alpha_reduce.grad.abs().sum() > 0


@pytest.mark.parametrize("sampled", [True, False])
def test_recomputed_edges_give_the_same_step(sampled):
    """Activation checkpointing (--recompute) changes the memory, not the step: the same loss, gradients and
    batch-norm running statistics (the recomputation must not count the batch twice)."""
    steps, calls = [], []
    for recompute in (False, True):
        net = _supernet()
        net.recompute = recompute
        ran = []
        net.cells[0].edges[0].register_forward_pre_hook(lambda *_: ran.append(1))
        paths = net.sample_paths(2.0, torch.Generator().manual_seed(5)) if sampled else None
        torch.manual_seed(1)
        loss = net(torch.randn(4, 3, 16, 16), paths).pow(2).sum()
        loss.backward()
        grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
        steps.append((loss.detach(), grads, {n: b.clone() for n, b in net.named_buffers()}))
        calls.append(len(ran))
        assert all(m.momentum == 0.1 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert calls == [1, 2]  # recomputed: the first edge ran again in the backward pass
    (loss0, g0, b0), (loss1, g1, b1) = steps
    assert torch.allclose(loss0, loss1) and g0.keys() == g1.keys() and len(g0) > 10
    assert all(torch.allclose(g0[n], g1[n], rtol=1e-4, atol=1e-6) for n in g0)
    tracked = [n for n in b0 if n.endswith("num_batches_tracked")]
    assert len(tracked) > 10 and all(int(b1[n]) == int(b0[n]) for n in tracked)
    assert b0.keys() == b1.keys() and all(torch.equal(b0[n], b1[n]) for n in b0)


def test_the_sampled_supernet_recomputes_by_default_and_only_darts_may_ask():
    darts = dict(strategy="darts")
    assert SearchConfig(supernet="sampled", **darts).recomputes and not SearchConfig(supernet="full", **darts).recomputes
    assert SearchConfig(supernet="full", recompute=True, **darts).recomputes
    assert not SearchConfig(supernet="sampled", recompute=False, **darts).recomputes
    with pytest.raises(ConfigError, match="--recompute checkpoints the edges of the DARTS supernet"):
        SearchConfig(strategy="proxy", recompute=True)
    result = CliRunner().invoke(cli, ["search", "--strategy", "evolve", "--recompute", "--out", "unused"])
    assert result.exit_code != 0 and "trains no supernet" in result.output


def test_a_search_with_recomputed_edges_is_the_same_search(tmp_path):
    """The default (recompute) and --no-recompute train the same supernet and derive the same network."""
    runs = {}
    for recompute in (True, False):
        cfg = SearchConfig(out=str(tmp_path / f"run-{recompute}"), supernet="sampled", recompute=recompute,
                           **TINY, **SMALL)
        search = DartsSearch(cfg.replace(out=str(tmp_path / f"prepared-{recompute}")))
        search.prepare()
        assert search.net.recompute == recompute
        runs[recompute] = run_search(cfg)
    assert runs[True].summary["arch_sha256"] == runs[False].summary["arch_sha256"]
    assert runs[True].summary["final_train_loss"] == pytest.approx(runs[False].summary["final_train_loss"], rel=1e-4)
    assert runs[True].params == runs[False].params <= SMALL["max_params"]
    alphas = {r: read_jsonl(tmp_path / f"run-{r}" / "alpha.jsonl") for r in runs}
    assert len(alphas[True]) >= 2 and alphas[True][-1]["normal"] != alphas[True][0]["normal"]  # they moved
    for a, b in zip(alphas[True], alphas[False], strict=True):  # every epoch's softmax(alpha), to 5 decimals
        assert (a["normal"], a["reduce"]) == (b["normal"], b["reduce"])
    assert cfg.identity() == cfg.replace(recompute=None).identity()


def test_a_sampled_search_at_deployment_size_fills_the_budget(tmp_path):
    cfg = SearchConfig(out=str(tmp_path / "run"), supernet="sampled", **TINY, **SMALL)
    result = run_search(cfg)
    s = result.summary
    assert s["supernet"] == "sampled" and s["layout"]["chosen_from_budgets"]
    assert max(s["budget_share"].values()) >= 0.5 and result.params <= SMALL["max_params"]
    model = load(tmp_path / "run")
    deploy = model.deployable()
    assert count_params(deploy) == result.params and count_macs(deploy, 16) == result.macs
    alphas = read_jsonl(tmp_path / "run" / "alpha.jsonl")
    assert alphas[0]["normal"] != alphas[-1]["normal"]
    steps = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r.get("event") == "step"]
    assert {r["arch_loss"] == r["arch_loss"] for r in steps} == {True, False}  # an arch step every other step


def test_an_interrupted_sampled_search_resumes_to_the_same_network(tmp_path):
    """Cut after step 3 (a weights-only step: the sampled path and its seeds must resume exactly)."""
    cfg = SearchConfig(out=str(tmp_path / "whole"), supernet="sampled", channels=4, cells=3, **TINY)
    whole = run_search(cfg)
    cut = cfg.replace(out=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_search(cut, on_step=lambda step: (_ for _ in ()).throw(KeyboardInterrupt) if step == 3 else None)
    assert run_search(cut).spec.sha256() == whole.spec.sha256()
    weights = [torch.load(tmp_path / name / "weights.pt", weights_only=True) for name in ("whole", "cut")]
    assert weights[0].keys() == weights[1].keys() and all(torch.equal(weights[0][k], weights[1][k])
                                                          for k in weights[0])


def test_the_layout_is_the_widest_whose_expected_network_fits():
    from edgenas.search.layout import FILL, choose_layout

    cfg = SearchConfig(strategy="darts", resolution=16, nodes=2, **SMALL)
    choice = choose_layout(cfg, 10)
    assert choice.chosen and max(choice.share.values()) <= FILL
    wider = choose_layout(cfg.replace(channels=choice.channels + 2, cells=choice.cells), 10)
    assert max(wider.share.values()) > FILL
    fixed = choose_layout(cfg.replace(channels=6, cells=3), 10)
    assert (fixed.channels, fixed.cells, fixed.chosen) == (6, 3, False)
    with pytest.raises(BudgetError, match="no layout of this space meets the budget"):
        choose_layout(cfg.replace(max_params=500), 10)


@pytest.mark.parametrize("seed", range(4))
def test_widening_keeps_the_function_in_eval_and_train_mode(seed):
    from edgenas.search.widen import widen

    (spec,) = sample_specs(1, seed, [Layout(channels=6, cells=5, nodes=3, resolution=16)], ALL_OPS)
    spec = dataclasses.replace(spec, projector=(16, 16))
    torch.manual_seed(seed)
    net = build(spec)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    wide, wide_spec = widen(net, spec, 10, seed=1)
    assert wide_spec.channels == 10 and wide_spec.stem_channels == 30
    assert count_params(wide) > count_params(net)
    x = torch.randn(4, 3, 16, 16)
    for mode in (False, True):
        net.train(mode)
        wide.train(mode)
        torch.testing.assert_close(wide(x), net(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(wide.project(x), net.project(x), rtol=1e-5, atol=1e-5)


def test_fill_budget_finds_the_widest_width_within_it():
    from edgenas.search.widen import fill_budget, widened_spec

    (spec,) = sample_specs(1, 0, [Layout(channels=4, cells=3, nodes=2, resolution=16)], ALL_OPS)
    C = fill_budget(spec, **SMALL)
    assert C >= 4

    def size(c):
        net = build(widened_spec(spec, c))
        return count_params(net), count_macs(net, 16)

    p, m = size(C)
    assert p <= SMALL["max_params"] and m <= SMALL["max_macs"]
    p2, m2 = size(C + 2)
    assert p2 > SMALL["max_params"] or m2 > SMALL["max_macs"]


def test_the_proxies_are_finite_seeded_and_label_free():
    from edgenas.search.proxies import PROXIES, rank_average, score

    specs = sample_specs(3, 1, [Layout(channels=6, cells=3, nodes=2, resolution=16)], ALL_OPS)
    x = torch.randn(16, 3, 16, 16)
    scores = []
    for spec in specs:
        torch.manual_seed(0)
        net = build(spec)
        s = score(net, x)
        assert set(s) == {"naswot", "synflow"} and all(v == v and abs(v) != float("inf") for v in s.values())
        torch.manual_seed(0)
        assert score(build(spec), x) == s
        scores.append(s)
    ranks = rank_average(scores, ("naswot", "synflow"))
    assert sorted(ranks) == sorted(ranks) and min(ranks) >= 0 and len(ranks) == 3
    assert {"naswot", "synflow", "zen"} <= set(PROXIES)


def test_zen_score_reads_the_feature_map_and_leaves_the_network_alone():
    from edgenas.models.stages import StagesNet
    from edgenas.search.proxies import zen
    from edgenas.space.stages import Stage, StageSpec

    spec = StageSpec(stem_channels=8, stages=(Stage(16, 3, True, 1), Stage(24, 5, True, 0)), resolution=16)
    torch.manual_seed(0)
    net = StagesNet(spec)
    x = torch.zeros(8, 3, 16, 16)
    assert net.eval().feature_map(x).shape == (8, 24, 4, 4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    a, b = zen(net, x), zen(net, x)
    assert a == b and a == a and abs(a) != float("inf")  # seeded, finite
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # scored on a copy
    # a wider network of the same shape is more expressive
    assert zen(StagesNet(spec.scaled(2.0)), x) > a
    # a cell network has no feature map: its pooled features are used
    (cells,) = sample_specs(1, 1, [Layout(channels=6, cells=3, nodes=2, resolution=16)], ALL_OPS)
    assert zen(build(cells), x) == zen(build(cells), x)


def test_the_proxy_strategy_ranks_trains_the_best_and_resumes(tmp_path):
    cfg = SearchConfig(out=str(tmp_path / "run"), space="darts-light", proxy_samples=6,
                       proxy_batch=16, **{**TINY, "strategy": "proxy"}, **SMALL)
    result = run_search(cfg)
    records = read_jsonl(tmp_path / "run" / "proxy.jsonl")
    assert len(records) == 6 and result.summary["strategy"] == "proxy"
    assert result.params <= SMALL["max_params"] and max(result.summary["budget_share"].values()) >= 0.5
    model = load(tmp_path / "run")
    assert model.deployable()(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    summary = json.loads((tmp_path / "run" / "train" / "summary.json").read_text())
    assert summary["steps"] > 0
    again = run_search(cfg)
    assert again.resumed and again.spec == result.spec
    # a larger pool of the same seed starts with the same candidates, and ranks them all
    more = run_search(cfg.replace(out=str(tmp_path / "run2"), proxy_samples=8))
    assert len(read_jsonl(tmp_path / "run2" / "proxy.jsonl")) == 8 and more.params <= SMALL["max_params"]


def test_the_proxy_strategy_searches_the_stage_space_and_resumes(tmp_path):
    cfg = SearchConfig(out=str(tmp_path / "run"), proxy_samples=5,  # the default: proxy, space auto: stages-cnn
                       proxy_batch=16, target="local", threads=1, **STAGES_TINY, **SMALL)
    result = run_search(cfg)
    assert result.spec.space == "stages-cnn" and result.summary["space"] == "stages-cnn"
    # no latency table covers the space yet: the network is measured on the target with its own runtime
    assert result.summary["latency_measured_on"] == "local" and result.summary["measured_latency_ms"] > 0
    assert len(read_jsonl(tmp_path / "run" / "proxy.jsonl")) == 5
    params, macs = result.spec.cost()
    assert result.params == params <= SMALL["max_params"] and macs <= SMALL["max_macs"]
    assert max(params / SMALL["max_params"], macs / SMALL["max_macs"]) >= 0.5
    model = load(tmp_path / "run")
    assert model.deployable()(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    again = run_search(cfg)
    assert again.resumed and again.spec == result.spec


@pytest.mark.parametrize("options, message", [
    (dict(supernet="sampled", order="second"), "needs --supernet full"),
    (dict(supernet="shared"), "unknown --supernet"),
    (dict(tau_min=2.0, tau_max=1.0), "--tau-min and --tau-max"),
    (dict(strategy="proxy", proxies=("naswot", "naswot")), "distinct proxy names"),
    (dict(strategy="proxy", ssl="dino"), "needs --strategy evolve"),
    (dict(arch_every=-1), "--arch-every"),
    (dict(strategy="darts", space="stages-cnn"), "--strategy darts searches"),
    (dict(strategy="proxy", space="mobilenet"), "not 'mobilenet'"),
    (dict(strategy="proxy", space="darts-light", latency_ms=5.0, target="local"), "needs the stages-cnn space"),
])
def test_bad_options_fail_at_once(options, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(**options)


@pytest.mark.parametrize("args, message", [
    (["--strategy", "proxy", "--proxies", "zenith"], "unknown proxy 'zenith'"),
    (["--strategy", "darts", "--max-params", "300"], "no layout of this space meets the budget"),
    (["--channels", "8"], "--channels shape(s) the DARTS cell space"),
    (["--supernet", "sampled", "--order", "second"], "needs --supernet full"),
    (["--strategy", "evolve", "--space", "stages-cnn"], "--strategy evolve searches"),
    (["--strategy", "proxy", "--space", "stages-cnn", "--max-params", "300"], "no network of the stage space"),
])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, args, message):
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["search", "--out", str(out), "--subset", "96", "--resolution", "16",
                                      "--batch-size", "8", "--epochs", "1", "--no-progress", *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists()
