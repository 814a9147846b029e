"""The evolved space's latency table (measured, grown during a search, estimated) and `edgenas ablate`."""

from __future__ import annotations

import dataclasses
import json

import pytest
from click.testing import CliRunner

from edgenas.cli.main import cli
from edgenas.errors import ConfigError
from edgenas.search.config import SearchConfig

pytest.importorskip("onnxruntime")

TINY = dict(strategy="evolve", subset=128, resolution=16, seed_channels=8, seed_blocks=2, max_blocks=3,
            max_channels=16, projector=(16, 16), epochs=3, batch_size=16, checkpoint_every=3, progress=False,
            plateau_window=2, plateau_threshold=0.05, min_steps_between_mutations=3, trial_steps=2, threads=1,
            ssl="barlow")


@pytest.fixture(scope="module")
def evolved_table(tmp_path_factory):
    """A measured table of the tiny evolved space on `local` (onnxruntime, 1 thread)."""
    from devices.profiles import load_profile
    from devices.transports.local import LocalTransport
    from edgenas.latency.build import build_evolved_table
    from edgenas.latency.measure import Timing

    out = tmp_path_factory.mktemp("evlut")
    return build_evolved_table(SearchConfig(**TINY), 10, LocalTransport().run_job, load_profile("local"), {},
                               out=out, depth=1, calibration_networks=3, timing=Timing(2, 20))


def _seed():
    from edgenas.evolve.proposals import seed_spec

    return dataclasses.replace(seed_spec(SearchConfig(**TINY), 10), projector=())


def test_table_covers_the_seed_neighbourhood(evolved_table):
    from bench.latency_table import LatencyTable
    from edgenas.latency.evolved import neighbourhood
    from edgenas.latency.spaces import arch_keys

    table = LatencyTable.load(evolved_table)
    assert evolved_table.name == "local-evolved-cnn-ort-fp32.json" and table.data["space"] == "evolved-cnn"
    specs = neighbourhood(_seed(), SearchConfig(**TINY), 1)
    assert _seed() in specs and len(specs) > 1
    for spec in specs:
        assert table.predict(arch_keys(spec)) > 0


def test_search_grows_the_table_and_meets_a_latency_budget(evolved_table, tmp_path):
    from bench.latency_table import LatencyTable
    from edgenas.latency.spaces import arch_keys
    from edgenas.search.runner import run_search

    lut = tmp_path / evolved_table.name
    lut.write_text(evolved_table.read_text())
    budget = LatencyTable.load(lut).predict(arch_keys(_seed())) * 1.5
    result = run_search(SearchConfig(**{**TINY, "max_blocks": 4, "max_channels": 32}, target="local", lut=str(lut),
                                     latency_ms=budget, out=str(tmp_path / "r")))
    s = result.summary
    assert s["predicted_latency_ms"] <= budget and s["measured_latency_ms"] > 0
    for line in (tmp_path / "r" / "evolution.jsonl").read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "mutation":
            assert all(c["latency_ms_after"] <= budget for c in e["candidates"])
    added = [e for e in json.loads(lut.read_text())["entries"].values() if e.get("added_during_search")]
    assert added, "the wider limits reach blocks the table did not hold: measured during the search"


def test_estimated_table_for_a_board_we_cannot_reach(tmp_path):
    from edgenas.search.runner import run_search

    result = run_search(SearchConfig(**TINY, target="rpi4", latency_ms=50.0, out=str(tmp_path / "r")))
    s = result.summary
    assert s["latency_table_estimated"] and 0 < s["predicted_latency_ms"] <= 50.0
    assert s.get("measured_latency_ms") is None and "estimated" in s["latency_table"]


def test_latency_budget_without_a_table_is_refused(tmp_path, monkeypatch):
    from edgenas.search.runner import run_search

    monkeypatch.setenv("EDGENAS_LUTS_DIR", str(tmp_path / "none"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="needs a latency table of the evolved-cnn space"):
        run_search(SearchConfig(**TINY, target="local", latency_ms=1.0, out=str(tmp_path / "r")))


def test_ablate_runs_every_variant_and_writes_a_table(tmp_path):
    import yaml

    config = tmp_path / "exp.yaml"
    config.write_text(yaml.safe_dump({**TINY, "ssl": "barlow+rotation", "curriculum": True, "epochs": 4}))
    result = CliRunner().invoke(cli, ["ablate", "--config", str(config), "--out", str(tmp_path / "abl")])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (tmp_path / "abl" / "ablation.jsonl").read_text().splitlines()]
    assert [r["variant"] for r in records] == ["full", "no-evolution", "no-sparse-routing", "no-curriculum",
                                               "no-rotation"]
    assert records[1]["mutations_kept"] == 0 and all(0 <= r["knn_acc"] <= 100 for r in records)
    assert "| no-rotation |" in (tmp_path / "abl" / "ablation.md").read_text()
    again = CliRunner().invoke(cli, ["ablate", "--config", str(config), "--out", str(tmp_path / "abl")])
    assert again.exit_code == 0 and len((tmp_path / "abl" / "ablation.jsonl").read_text().splitlines()) == 5
    darts = tmp_path / "darts.yaml"
    darts.write_text("epochs: 1\n")
    bad = CliRunner().invoke(cli, ["ablate", "--config", str(darts)])
    assert bad.exit_code == 2 and "takes an evolve config" in bad.output


def test_space_sample_draws_from_the_space_it_names(tmp_path):
    from edgenas.space.registry import load_spec

    result = CliRunner().invoke(cli, ["space", "sample", "--space", "evolved-cnn", "--n", "3", "--seed", "2",
                                      "--resolution", "16", "--seed-channels", "8", "--seed-blocks", "2",
                                      "--max-blocks", "3", "--max-channels", "16", "--num-classes", "5",
                                      "--out", str(tmp_path / "archs")])
    assert result.exit_code == 0, result.output
    specs = [load_spec(p) for p in sorted((tmp_path / "archs").glob("*.json"))]
    assert len(specs) == 3 and {s.space for s in specs} == {"evolved-cnn"} and {s.num_classes for s in specs} == {5}


def test_validate_an_evolved_table_with_the_users_timing(evolved_table, tmp_path, monkeypatch):
    """The blocks the held-out networks need are measured with --warmup/--runs/--timeout, for the table's classes."""
    import shutil

    from edgenas.latency import measure

    lut = shutil.copy(evolved_table, tmp_path / evolved_table.name)
    seen = []
    real = measure._time
    monkeypatch.setattr(measure, "_time", lambda *a: seen.append(a[-1]) or real(*a))
    result = CliRunner().invoke(cli, ["lut", "validate", "--space", "evolved-cnn", "--lut", str(lut), "--samples", "3",
                                      "--warmup", "1", "--runs", "7", "--timeout", "99", "--json"])
    assert result.exit_code == 0, result.output
    assert seen and {(t.warmup, t.runs, t.timeout) for t in seen} == {(1, 7, 99.0)}
    assert json.loads(result.output)["n"] == 3


def test_measure_blocks_leaves_the_callers_rows_alone(tmp_path):
    from devices.transports.local import LocalTransport
    from edgenas.latency.measure import Timing, measure_blocks

    done = {"empty/c4/r8": {"p50_ms": 1.0, "cv": 0.0}}
    rows = measure_blocks(["empty/c4/r8", "op/ds_conv/c4/s1/r8"], done, LocalTransport().run_job, "ort", "fp32", 1,
                          Timing(1, 3))
    assert list(done) == ["empty/c4/r8"] and set(rows) == {"empty/c4/r8", "op/ds_conv/c4/s1/r8"}


def test_exports_in_parallel_are_timed_only_when_no_export_runs(tmp_path):
    """``Timing(jobs=2)``: the blocks are exported two at a time by worker processes and each batch is timed
    after both exports finished, every key once, in order; the artifacts are gone afterwards."""
    import os
    from pathlib import Path

    from devices.transports.local import LocalTransport
    from edgenas.latency.measure import Timing, measure_blocks, measure_specs

    transport = LocalTransport()
    keys = ["empty/c4/r8", "op/ds_conv/c4/s1/r8", "op/se/c4/s1/r8"]
    seen = []

    def run_job(job, timeout):
        artifact = Path(job["artifact"])
        seen.append((artifact, sorted(p.name for p in artifact.parent.parent.iterdir())))
        return transport.run_job(job, timeout)

    rows = measure_blocks(keys, {}, run_job, "ort", "fp32", 1, Timing(1, 3, jobs=2))
    assert list(rows) == keys and all(rows[k]["p50_ms"] > 0 for k in keys)
    assert [names for _, names in seen] == [["0", "1"], ["1"], ["2"]]  # a batch of two exported, then timed
    assert not any(os.path.exists(p) for p, _ in seen)
    assert len(measure_specs([_seed(), _seed()], transport.run_job, "ort", "fp32", 1, Timing(1, 3, jobs=2))) == 2
    with pytest.raises(ConfigError, match="--jobs must be an integer in 1..256"):
        Timing(jobs=0)
