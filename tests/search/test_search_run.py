"""End-to-end searches on the synthetic data, small enough for the default test run."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgenas.errors import BudgetError, CheckpointError, ConfigError
from edgenas.models import load
from edgenas.profiler import count_macs, count_params
from edgenas.rundir import read_jsonl
from edgenas.search.config import SearchConfig
from edgenas.search.runner import run_search
from edgenas.space import ArchSpec

RUN_FILES = {"config.yaml", "arch.json", "weights.pt", "search.ckpt", "metrics.jsonl", "alpha.jsonl",
             "summary.json", "report.md"}


def test_search_writes_a_complete_run_directory(tmp_path, tiny_search_options):
    cfg = SearchConfig(out=str(tmp_path / "run"), target="rpi4", **tiny_search_options)
    result = run_search(cfg)
    files = {p.name for p in (tmp_path / "run").iterdir()}
    assert RUN_FILES <= files
    spec = ArchSpec.load(tmp_path / "run")
    assert spec == result.spec and spec.resolution == 16 and spec.num_classes == 10
    model = load(tmp_path / "run")  # arch.json rebuilds it, weights.pt loads into it
    deploy = model.deployable()
    assert count_params(deploy) == result.params <= cfg.max_params
    assert count_macs(deploy, 16) == result.macs <= cfg.max_macs
    with torch.no_grad():
        assert model.eval()(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    steps = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["event"] == "step"]
    assert [r["global_step"] for r in steps] == list(range(1, result.summary["steps"] + 1))
    assert all(r["train_loss"] == r["train_loss"] for r in steps)
    alphas = read_jsonl(tmp_path / "run" / "alpha.jsonl")
    assert len(alphas) == cfg.epochs
    assert alphas[0]["normal"] != alphas[-1]["normal"]  # the architecture weights moved
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["target"] == "rpi4" and summary["params"] == result.params
    # running the same command again reports the finished run instead of redoing it
    again = run_search(cfg)
    assert again.resumed and again.spec == spec


def test_preserved_weights_come_from_the_search(tmp_path, tiny_search_options):
    cfg = SearchConfig(out=str(tmp_path / "run"), **tiny_search_options)
    run_search(cfg)
    model = load(tmp_path / "run")
    ckpt = torch.load(tmp_path / "run" / "search.ckpt", weights_only=False)
    assert torch.equal(model.stem[0].weight, ckpt["model"]["stem.0.weight"])
    torch.manual_seed(cfg.seed)  # a fresh network of the same seed differs from the searched one
    from edgenas.models import build

    assert not torch.equal(build(model.spec).stem[0].weight, model.stem[0].weight)


def test_interrupted_search_resumes_where_it_stopped(tmp_path, tiny_search_options):
    reference = run_search(SearchConfig(out=str(tmp_path / "ref"), **tiny_search_options))

    cfg = SearchConfig(out=str(tmp_path / "run"), **tiny_search_options)

    def interrupt(step):
        if step == 5:  # mid-epoch, one step after the checkpoint at step 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, on_step=interrupt)
    assert not (tmp_path / "run" / "arch.json").exists()
    resumed = run_search(cfg)
    events = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert {"event": "resume", "global_step": 4, "epoch": 0, "step": 4} in events
    steps = [r["global_step"] for r in events if r["event"] == "step"]
    assert steps == sorted(set(steps))  # step 5 logged before the kill was dropped, then redone
    assert resumed.spec == reference.spec
    a = torch.load(tmp_path / "run" / "search.ckpt", weights_only=False)["model"]["alpha_normal"]
    b = torch.load(tmp_path / "ref" / "search.ckpt", weights_only=False)["model"]["alpha_normal"]
    torch.testing.assert_close(a, b)


def test_resume_refuses_other_options(tmp_path, tiny_search_options):
    cfg = SearchConfig(out=str(tmp_path / "run"), **tiny_search_options)
    with pytest.raises(KeyboardInterrupt):
        run_search(cfg, on_step=lambda s: (_ for _ in ()).throw(KeyboardInterrupt) if s == 2 else None)
    with pytest.raises(CheckpointError, match="channels"):
        run_search(cfg.replace(channels=6))


def test_second_order_search_runs(tmp_path, tiny_search_options):
    opts = {**tiny_search_options, "epochs": 1}
    result = run_search(SearchConfig(out=str(tmp_path / "run"), order="second", **opts))
    assert result.params > 0


def test_gradient_accumulation(tmp_path, tiny_search_options):
    opts = {**tiny_search_options, "epochs": 1, "batch_size": 4, "accum_steps": 2}
    result = run_search(SearchConfig(out=str(tmp_path / "run"), **opts))
    assert result.summary["steps"] == 96 // 2 // 8


def test_budget_is_enforced(tmp_path, tiny_search_options):
    free = run_search(SearchConfig(out=str(tmp_path / "free"), **tiny_search_options))
    tight = free.macs - 1
    result = run_search(SearchConfig(out=str(tmp_path / "tight"), max_macs=tight, **tiny_search_options))
    assert result.macs <= tight
    with pytest.raises(BudgetError, match="no network in this space"):
        run_search(SearchConfig(out=str(tmp_path / "none"), max_params=500, **tiny_search_options))
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("bad", [dict(epochs=0), dict(batch_size=1), dict(channels=7), dict(order="third"),
                                 dict(data="cifar10"), dict(warmup_epochs=5)])
def test_bad_config(bad, tiny_search_options):
    with pytest.raises(ConfigError):
        SearchConfig(**{**tiny_search_options, **bad})


def test_killed_process_resumes(tmp_path):
    """SIGKILL a real `edgenas search` mid-epoch; the same command resumes from the checkpoint."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "edgenas", "search", "--strategy", "darts", "--out", str(out), "--subset", "160", "--resolution", "16",
           "--channels", "4", "--cells", "2", "--nodes", "2", "--projector", "16,16", "--epochs", "1",
           "--batch-size", "8", "--checkpoint-every", "2", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        steps = [r for r in read_jsonl(out / "metrics.jsonl") if r.get("event") == "step"]
        if len(steps) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "arch.json").exists()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    events = read_jsonl(out / "metrics.jsonl")
    resume = [r for r in events if r["event"] == "resume"]
    assert resume and resume[0]["global_step"] >= 4 and resume[0]["step"] > 0  # mid-epoch, not a restart
    assert ArchSpec.load(out).num_classes == 10
