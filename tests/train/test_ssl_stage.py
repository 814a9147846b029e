"""The refinement of a derived network (``--refine-epochs``) and the two-stage baseline built on the same loop."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner

import edgenas.train.ssl_stage as ssl_stage
from edgenas.cli.main import cli
from edgenas.errors import CheckpointError, ConfigError
from edgenas.search.config import SearchConfig
from edgenas.search.runner import run_search
from edgenas.train.pretrain import ensure_pretrained

REFINE = dict(refine_epochs=2, refine_batch_size=16, refine_lr=0.05)


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain", "refine"))
    return copy


def _cfg(run, tiny_search_options, **changes) -> SearchConfig:
    return SearchConfig(**{**tiny_search_options, "out": str(run), **changes})


def _state(path):
    return torch.load(path, weights_only=True)


def test_refining_a_finished_search_keeps_its_weights_and_refines_a_copy(run, tiny_search_options):
    before = _state(run / "weights.pt")
    result = run_search(_cfg(run, tiny_search_options, **REFINE))
    kept, refined = _state(run / "weights_search.pt"), _state(run / "weights.pt")
    assert kept.keys() == before.keys() and all(torch.equal(kept[k], before[k]) for k in before)
    trained = [k for k in kept if k.endswith("weight") and not k.startswith("classifier.")]
    assert trained and all(not torch.equal(kept[k], refined[k]) for k in trained)
    r = result.summary["refine"]
    assert r["epochs"] == 2 and r["rows"] == 96 and r["steps"] == 2 * (96 // 16)
    assert json.loads((run / "summary.json").read_text())["refine"] == r
    lrs = [json.loads(line)["lr"] for line in (run / "refine" / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) == r["steps"] and lrs[0] < max(lrs) and lrs[-1] < max(lrs)  # warm-up, then cosine
    assert "| refinement | 2 epochs, 12 steps on 96 images" in (run / "report.md").read_text()
    if (run / "plots" / "loss.png").exists():  # matplotlib is installed
        assert (run / "plots" / "refine_loss.png").is_file()
    # the same command again is done: nothing retrains, the refined weights stay
    digest = (run / "weights.pt").read_bytes()
    again = run_search(_cfg(run, tiny_search_options, **REFINE))
    assert again.summary["refine"] == r and (run / "weights.pt").read_bytes() == digest
    assert all(torch.equal(_state(run / "weights.pt")[k], refined[k]) for k in refined)
    # the search itself is unchanged by the refinement options (its own checkpoint identity)
    assert run_search(_cfg(run, tiny_search_options)).resumed


def test_another_refinement_recipe_on_a_refined_run_is_refused(run, tiny_search_options):
    run_search(_cfg(run, tiny_search_options, **REFINE))
    with pytest.raises(CheckpointError, match="another refinement"):
        run_search(_cfg(run, tiny_search_options, **{**REFINE, "refine_lr": 0.1}))


def test_an_interrupted_refinement_resumes_to_the_same_weights(run, tmp_path, tiny_search_options, monkeypatch):
    other = tmp_path / "other"
    shutil.copytree(run, other)
    run_search(_cfg(other, tiny_search_options, **REFINE))
    expected = _state(other / "weights.pt")

    real, calls = ssl_stage.append_jsonl, []

    def interrupt(path, record):
        real(path, record)
        calls.append(record)
        if len(calls) == 8:  # mid second epoch: the checkpoint of step 6 (end of epoch 1) is on disk
            raise KeyboardInterrupt

    monkeypatch.setattr(ssl_stage, "append_jsonl", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_search(_cfg(run, tiny_search_options, **REFINE))
    assert not (run / "refine" / "summary.json").exists()
    monkeypatch.setattr(ssl_stage, "append_jsonl", real)
    run_search(_cfg(run, tiny_search_options, **REFINE))
    got = _state(run / "weights.pt")
    assert all(torch.allclose(got[k].float(), expected[k].float(), atol=1e-6) for k in expected)
    steps = [json.loads(line)["global_step"] for line in (run / "refine" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # no step logged twice after the resume


def test_two_stage_baseline_gets_the_search_budget_then_the_same_refinement(run, tiny_search_options):
    run_search(_cfg(run, tiny_search_options, **REFINE))
    weights = ensure_pretrained(run, threads=1, progress=False)
    summary = json.loads((run / "pretrain" / "summary.json").read_text())
    search_steps = json.loads((run / "summary.json").read_text())["steps"]
    assert summary["pretrain"]["steps"] == search_steps
    refined = json.loads((run / "summary.json").read_text())["refine"]
    assert summary["refine"]["steps"] == refined["steps"] and summary["refine"]["rows"] == refined["rows"] == 96
    assert summary["steps"] == search_steps + summary["refine"]["steps"]
    state = _state(weights)
    assert not torch.equal(state["stem.0.weight"], _state(run / "weights.pt")["stem.0.weight"])


def test_two_stage_without_refinement_is_one_stage(run):
    ensure_pretrained(run, threads=1, progress=False)
    summary = json.loads((run / "pretrain" / "summary.json").read_text())
    assert set(summary) >= {"pretrain", "steps"} and "refine" not in summary


@pytest.mark.parametrize("change, match", [
    ({"refine_epochs": -1}, "--refine-epochs"),
    ({"refine_epochs": 1, "refine_batch_size": 1}, "--refine-batch-size"),
    ({"refine_epochs": 1, "refine_lr": 0.0}, "--refine-lr"),
    ({"refine_epochs": 1, "refine_subset": 8, "refine_batch_size": 16}, "--refine-subset"),
    ({"refine_epochs": 1, "strategy": "evolve"}, "evolve"),
])
def test_bad_refinement_options(tiny_search_options, tmp_path, change, match):
    with pytest.raises(ConfigError, match=match):
        _cfg(tmp_path / "r", tiny_search_options, **change)


def test_a_batch_larger_than_the_pool_is_refused(run, tiny_search_options):
    with pytest.raises(ConfigError, match="more than the 96 images"):
        run_search(_cfg(run, tiny_search_options, refine_epochs=1, refine_batch_size=128))


def test_refinement_under_torchrun_is_refused(run, tiny_search_options, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="one process"):
        run_search(_cfg(run, tiny_search_options, **REFINE))


def test_cli_bad_refine_option_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["search", "--refine-epochs", "-2", "--out", str(tmp_path / "r"), "--no-progress"])
    assert result.exit_code != 0 and "--refine-epochs must be >= 0" in result.output
    assert not (tmp_path / "r").exists()


def test_a_finished_finetuning_of_weights_since_refined_is_refused(run, tiny_search_options, tiny_finetune_options):
    from edgenas.train import FinetuneConfig, run_finetune

    cfg = FinetuneConfig(model=str(run), init="preserved", out=str(run / "ft"), **tiny_finetune_options)
    first = run_finetune(cfg).result
    assert first["init_sha256"] and run_finetune(cfg).resumed  # finished: reported, not redone
    run_search(_cfg(run, tiny_search_options, **REFINE))
    with pytest.raises(CheckpointError, match="other weights"):
        run_finetune(cfg)
