"""`edgenas search --strategy evolve`: a tiny grown network end to end, resume, budgets, every SSL objective."""

from __future__ import annotations

import json

import pytest
import torch

from edgenas.errors import BudgetError, CheckpointError
from edgenas.search.config import SearchConfig
from edgenas.search.runner import run_search
from edgenas.space.evolved import EvolvedSpec
from edgenas.space.registry import load_spec

TINY = dict(strategy="evolve", subset=128, resolution=16, seed_channels=8, seed_blocks=2, max_blocks=4,
            max_channels=32, projector=(16, 16), epochs=3, batch_size=16, checkpoint_every=3, progress=False,
            plateau_window=2, plateau_threshold=0.05, min_steps_between_mutations=4, trial_steps=2,
            dino_out_dim=64, local_crops=2, threads=1, seed=1)


def _events(run, kind):
    lines = (run / "evolution.jsonl").read_text().splitlines() if (run / "evolution.jsonl").exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == kind]


@pytest.mark.parametrize("ssl", ["barlow", "ntxent+rotation", "dino+rotation"])
def test_evolve_search_grows_and_preserves_its_weights(tmp_path, ssl):
    from edgenas.models import load

    result = run_search(SearchConfig(**TINY, ssl=ssl, out=str(tmp_path / "r")))
    run = tmp_path / "r"
    spec = load_spec(run)
    assert isinstance(spec, EvolvedSpec) and spec == result.spec
    assert spec.num_classes == 10 and spec.extra and dict(spec.extra)["classes"].startswith("circle")
    assert bool(spec.projector) == (ssl != "dino+rotation")  # DINO has its own head, not a projector
    rounds = _events(run, "mutation")
    assert rounds and all({"candidates", "accepted", "params_before", "loss_before"} <= set(e) for e in rounds)
    assert result.summary["mutation_rounds"] == len(rounds)
    # the written network is the search's network: weights.pt loads into build(arch.json) exactly
    model = load(run)
    state = torch.load(run / "weights.pt", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    parts = {k for r in steps for k in r if k.startswith("loss_")}
    assert parts == {f"loss_{p}" for p in ssl.split("+")}
    assert (run / "report.md").read_text().count("| block |") == 1 and (run / "plots" / "evolution.png").is_file()


def test_accepted_mutations_grow_the_network(tmp_path):
    run_search(SearchConfig(**TINY, ssl="barlow", out=str(tmp_path / "r")))
    kept = [e for e in _events(tmp_path / "r", "mutation") if e["accepted"]]
    assert kept, "the tiny search kept no mutation"
    for e in kept:
        assert e["chosen"]["params_after"] > e["params_before"]
        assert e["chosen"]["fitness"] > e["fitness_unchanged"]


def test_budget_bounds_every_candidate(tmp_path):
    seed = run_search(SearchConfig(**{**TINY, "epochs": 1}, ssl="barlow", out=str(tmp_path / "seed")))
    budget = seed.params + 200  # room for almost nothing
    result = run_search(SearchConfig(**TINY, ssl="barlow", max_params=budget, out=str(tmp_path / "r")))
    assert result.params <= budget
    for e in _events(tmp_path / "r", "mutation"):
        assert all(c["params_after"] <= budget for c in e["candidates"])
    with pytest.raises(BudgetError, match="seed network already has"):
        run_search(SearchConfig(**TINY, ssl="barlow", max_params=100, out=str(tmp_path / "x")))


def test_interrupted_evolution_resumes_to_the_same_network(tmp_path):
    cfg = SearchConfig(**TINY, ssl="barlow", out=str(tmp_path / "whole"))
    whole = run_search(cfg)

    def stop(step):
        if step == 14:
            raise KeyboardInterrupt

    cut = cfg.replace(out=str(tmp_path / "cut"))
    with pytest.raises(KeyboardInterrupt):
        run_search(cut, on_step=stop)
    resumed = run_search(cut)
    assert resumed.spec == whole.spec and resumed.resumed
    a = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "weights.pt", weights_only=True)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert [e["round"] for e in _events(tmp_path / "cut", "mutation")] == \
        [e["round"] for e in _events(tmp_path / "whole", "mutation")]
    with pytest.raises(CheckpointError, match="max_blocks"):
        run_search(cfg.replace(max_blocks=5))


def test_curriculum_moves_through_the_levels(tmp_path):
    run_search(SearchConfig(**{**TINY, "epochs": 4}, ssl="barlow", curriculum=True, out=str(tmp_path / "r")))
    assert [e["level"] for e in _events(tmp_path / "r", "curriculum")] == [2, 3, 4]
    stages = {json.loads(line)["stage"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()}
    assert stages == {0, 1, 2, 3}


def test_evolved_run_fine_tunes_and_exports(tmp_path, tiny_finetune_options):
    from edgenas.deploy.source import resolve_source
    from edgenas.train import FinetuneConfig, run_finetune

    run_search(SearchConfig(**TINY, ssl="barlow", out=str(tmp_path / "r")))
    result = run_finetune(FinetuneConfig(model=str(tmp_path / "r"), out=str(tmp_path / "ft"),
                                         **tiny_finetune_options)).result
    from edgenas.models import build
    from edgenas.profiler import count_params

    tuned = load_spec(tmp_path / "ft")
    assert isinstance(tuned, EvolvedSpec) and tuned.projector == () and tuned.blocks == load_spec(tmp_path / "r").blocks
    assert result["kind"] == "searched" and result["params"] == count_params(build(tuned))
    source = resolve_source(str(tmp_path / "ft"))
    assert source.model(torch.zeros(1, 3, 16, 16)).shape == (1, 10)
    from edgenas.report import write_reports

    write_reports(tmp_path / "r", ("md",))
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Network" in md and "| block |" in md and "plots/evolution.png" in md
