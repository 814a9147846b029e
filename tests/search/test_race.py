"""``--race``: the zero-cost ranking's best trained briefly on rotation prediction, the best learner kept."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from edgenas.errors import ConfigError
from edgenas.rundir import read_jsonl
from edgenas.search.config import SearchConfig
from edgenas.search.runner import run_search

#: a stage-space search small enough for a test, on enough images for the rotation hold-out
RACE = dict(subset=1200, resolution=16, projector=(16, 16), epochs=1, batch_size=64, checkpoint_every=2,
            progress=False, seed=3, proxy_samples=5, proxy_batch=16, threads=1, max_params=40_000,
            max_macs=4_000_000, race=3, race_steps=3, race_from="top")


def test_the_race_keeps_the_best_rotation_learner_and_resumes_without_retraining(tmp_path, monkeypatch):
    monkeypatch.setattr("edgenas.search.race.FLOOR", 0.0)  # 3 steps on synthetic shapes learn little
    cfg = SearchConfig(out=str(tmp_path / "run"), **RACE, race_by="rotation")
    result = run_search(cfg)
    raced = read_jsonl(tmp_path / "run" / "race.jsonl")
    assert len(raced) == 3 and all(0 <= r["rot_acc_3"] <= 100 for r in raced)
    scored = {r["sha256"]: r for r in read_jsonl(tmp_path / "run" / "proxy.jsonl")}
    assert {r["sha256"] for r in raced} <= set(scored)  # the raced are the zero-cost ranking's candidates
    best = max(raced, key=lambda r: r["rot_acc_3"])
    winner = scored[best["sha256"]]["spec"]
    assert [s["width"] for s in winner["stages"]] == [s.width for s in result.spec.stages]
    assert result.summary["race"]["candidates"] == 3
    assert result.summary["race"]["best_rotation_acc"] == best["rot_acc_3"]
    assert result.summary["race"]["decided_by"] == "rotation"
    again = run_search(cfg)
    assert again.resumed and again.spec == result.spec
    assert len(read_jsonl(tmp_path / "run" / "race.jsonl")) == 3  # nothing raced twice


@pytest.mark.parametrize("options, message", [
    (dict(race=-1), "--race must be in 0..--proxy-samples"),
    (dict(race=9, proxy_samples=8), "--race must be in 0..--proxy-samples"),
    (dict(race=2, race_steps=2), "--race-steps must be >= 3"),
    (dict(race=2, race_steps=True), "--race-steps must be >= 3"),
    (dict(race=2, race_from="best"), "--race-from must be"),
    (dict(race=2, race_by="naswot"), "--race-by must be one of rotation, rotation[+]naswot"),
    (dict(race=2, race_by="rotation+naswot", proxies=("synflow",)), "needs naswot in --proxies"),
    (dict(race=2, space="darts-light"), "--race is measured on the stages-cnn space only"),
])
def test_bad_race_options_fail_at_once(options, message):
    with pytest.raises(ConfigError, match=message):
        SearchConfig(strategy="proxy", **options)


def test_the_race_from_the_sample_races_the_first_sampled(tmp_path):
    result = run_search(SearchConfig(out=str(tmp_path / "run"), **{**RACE, "race_from": "sample", "race": 2}))
    sampled = [r["sha256"] for r in read_jsonl(tmp_path / "run" / "proxy.jsonl")][:2]
    assert [r["sha256"] for r in read_jsonl(tmp_path / "run" / "race.jsonl")] == sampled
    assert result.summary["race"]["candidates"] == 2


def test_too_few_images_for_the_race_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="too few"):
        run_search(SearchConfig(out=str(tmp_path / "run"), **{**RACE, "subset": 300}))


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """An ImageFolder tree of 1,320 noise images at 16 px: 1,188 outside the hold-out, enough for the race."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("pool")
    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / c).mkdir()
        for i in range(660):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def _default_race(**changes):
    return {**{k: v for k, v in RACE.items() if k not in ("race", "race_from", "subset")}, **changes}


def test_the_default_races_the_first_sampled_and_scores_only_them(tmp_path, pool, monkeypatch):
    from edgenas.search.config import DEFAULT_RACE

    monkeypatch.setattr("edgenas.search.race.FLOOR", 0.0)  # noise images: the race would learn nothing
    monkeypatch.setattr("edgenas.search.config.SMALL_MACS", 0)  # the race of candidates of a default budget
    cfg = SearchConfig(out=str(tmp_path / "run"), **_default_race(data="imagefolder", data_root=str(pool),
                                                                  proxy_samples=DEFAULT_RACE + 2))
    assert cfg.race is None and cfg.race_from == "sample" and cfg.race_for(1188) == DEFAULT_RACE
    assert cfg.search_subset == 5000  # a ceiling: the tree holds fewer, and all of them are used
    result = run_search(cfg)
    assert result.summary["images"] == 1188
    scored = [r["sha256"] for r in read_jsonl(tmp_path / "run" / "proxy.jsonl")]
    assert len(scored) == DEFAULT_RACE  # the race decides alone: the other samples are not scored
    assert [r["sha256"] for r in read_jsonl(tmp_path / "run" / "race.jsonl")] == scored
    assert result.summary["race"] == {**result.summary["race"], "candidates": DEFAULT_RACE, "from": "sample",
                                      "decided_by": "rotation"}
    assert "raced 3 steps on rotation prediction" in (tmp_path / "run" / "report.md").read_text()


def test_small_candidates_race_in_greater_number_and_longer_by_default(tmp_path, pool, monkeypatch):
    from edgenas.search import config

    monkeypatch.setattr("edgenas.search.race.FLOOR", 0.0)
    monkeypatch.setattr(config, "SMALL_RACE_STEPS", 4)  # 1,000 in use: too slow for a test
    monkeypatch.setattr(config, "SMALL_RACE", config.DEFAULT_RACE + 1)
    options = {k: v for k, v in _default_race(data="imagefolder", data_root=str(pool)).items() if k != "race_steps"}
    cfg = SearchConfig(out=str(tmp_path / "run"), **{**options, "proxy_samples": config.DEFAULT_RACE + 3})
    assert cfg.race is None and cfg.race_steps is None  # both follow the candidates' size
    result = run_search(cfg)  # max_macs 4M: every candidate is small
    raced = read_jsonl(tmp_path / "run" / "race.jsonl")
    assert len(raced) == config.DEFAULT_RACE + 1 and {r["steps"] for r in raced} == {4}
    assert result.summary["race"]["candidates"] == config.DEFAULT_RACE + 1 and result.summary["race"]["steps"] == 4
    assert "raced 4 steps on rotation prediction" in (tmp_path / "run" / "report.md").read_text()
    # ... and NASWOT helps choose: the pick is the best rank average of the two scores
    assert result.summary["race"]["decided_by"] == "rotation+naswot"
    scored = {r["sha256"]: r for r in read_jsonl(tmp_path / "run" / "proxy.jsonl")}
    scores = [{"rotation": r["rot_acc_4"], "naswot": scored[r["sha256"]]["naswot"]} for r in raced]
    def rank(i, key):
        return sorted(range(len(scores)), key=lambda j: -scores[j][key]).index(i)

    best = min(range(len(scores)), key=lambda i: (rank(i, "rotation") + rank(i, "naswot"), -scores[i]["rotation"]))
    pick = scored[raced[best]["sha256"]]["spec"]
    assert [s["width"] for s in pick["stages"]] == [s.width for s in result.spec.stages]
    again = run_search(cfg)
    assert again.resumed and again.spec == result.spec and len(read_jsonl(tmp_path / "run" / "race.jsonl")) == len(raced)


def test_the_race_plan_follows_the_median_candidate_and_yields_to_options():
    from edgenas.search.config import DEFAULT_RACE_STEPS, SMALL_MACS, SMALL_RACE, SMALL_RACE_STEPS
    from edgenas.search.race import small_candidates

    class Spec:  # what small_candidates reads of a stage spec
        def __init__(self, macs):
            self.macs = macs

        def cost(self):
            return 0, self.macs

    cfg = SearchConfig(strategy="proxy", data="imagefolder", data_root="DIR")
    big, small = SMALL_MACS + 1, SMALL_MACS
    def is_small(specs):
        return small_candidates(specs, SMALL_RACE, SMALL_MACS)

    assert is_small([Spec(small)] * 12 + [Spec(big)] * 11)  # the median decides
    assert not is_small([Spec(small)] * 11 + [Spec(big)] * 12)
    assert not is_small([Spec(big)] * SMALL_RACE + [Spec(1)] * 100)  # only the first SMALL_RACE count
    assert cfg.race_by_for(small=True) == "rotation+naswot" and cfg.race_by_for() == "rotation"
    assert SearchConfig(strategy="proxy", proxies=("synflow",)).race_by_for(small=True) == "rotation"
    assert SearchConfig(strategy="proxy", race_by="rotation").race_by_for(small=True) == "rotation"
    assert cfg.race_for(10_000, small=True) == SMALL_RACE and cfg.race_for(10_000) == 8
    assert cfg.race_steps_for(small=True) == SMALL_RACE_STEPS and cfg.race_steps_for() == DEFAULT_RACE_STEPS == 200
    asked = SearchConfig(strategy="proxy", data="imagefolder", data_root="DIR", race=5, race_steps=300)
    assert asked.race_for(10_000, small=True) == 5 and asked.race_steps_for(small=True) == 300
    assert SearchConfig(strategy="proxy", data="imagefolder", data_root="DIR", proxy_samples=10).race_for(
        10_000, small=True) == 10  # never more than are sampled


def test_the_default_race_stands_aside_when_the_images_are_too_few(tmp_path, pool):
    cfg = SearchConfig(out=str(tmp_path / "run"), **_default_race(data="imagefolder", data_root=str(pool),
                                                                  subset=300))
    assert cfg.race_for(300) == 0 and cfg.race_for(1128) == min(8, cfg.proxy_samples)
    console = Console(file=io.StringIO(), record=True, width=200)
    result = run_search(cfg, console=console)
    lines = console.export_text()
    assert "too few to race candidates" in lines and "1,128" in lines
    assert "race" not in result.summary
    assert len(read_jsonl(tmp_path / "run" / "proxy.jsonl")) == cfg.proxy_samples  # the zero-cost ranking decides
    assert not (tmp_path / "run" / "race.jsonl").exists()


def test_the_default_race_is_for_real_images_of_the_stage_space():
    synthetic = SearchConfig(strategy="proxy")  # the synthetic shapes look alike turned
    assert synthetic.race_for(10_000) == 0 and synthetic.search_subset == 1024
    real = dict(data="imagefolder", data_root="DIR")
    assert SearchConfig(strategy="proxy", **real).search_subset == 5000
    assert SearchConfig(strategy="proxy", **real).race_for(10_000) == 8
    cells = SearchConfig(strategy="proxy", space="darts-light", **real)
    assert cells.race is None and cells.race_for(10_000) == 0 and cells.search_subset == 1024
    assert SearchConfig(strategy="darts", **real).search_subset == 1024
    assert SearchConfig(strategy="proxy", subset=700, **real).search_subset == 700
    asked = SearchConfig(strategy="proxy", race=2)  # asked for: raced on any data, on the race's images
    assert asked.race_for(10_000) == 2 and asked.search_subset == 5000
    assert SearchConfig(strategy="proxy", race=0, **real).search_subset == 1024


def test_a_race_nobody_learns_leaves_the_choice_to_the_zero_cost_ranking(tmp_path, monkeypatch):
    monkeypatch.setattr("edgenas.search.race.FLOOR", 101.0)  # no rotation accuracy reaches it
    console = Console(file=io.StringIO(), record=True, width=200)
    result = run_search(SearchConfig(out=str(tmp_path / "run"), **RACE), console=console)
    assert "no raced candidate learned to tell the turns apart" in console.export_text()
    scored = {r["sha256"]: r for r in read_jsonl(tmp_path / "run" / "proxy.jsonl")}
    raced = [r["sha256"] for r in read_jsonl(tmp_path / "run" / "race.jsonl")]
    assert len(raced) == 3 and result.summary["race"]["decided_by"] == "zero-cost"
    zero_cost_best = scored[raced[0]]["spec"]  # --race-from top races in the zero-cost order
    assert [s["width"] for s in zero_cost_best["stages"]] == [s.width for s in result.spec.stages]
    assert "zero-cost ranking decided" in (tmp_path / "run" / "report.md").read_text()


def test_every_strategy_takes_its_default_image_count_as_a_ceiling(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        for i in range(30):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / c / f"{i}.png")
    real = dict(data="imagefolder", data_root=str(tmp_path), resolution=16)
    train_part = 54  # 60 images less the fixed 10% hold-out
    for strategy in ("darts", "evolve", "proxy"):
        assert len(SearchConfig(strategy=strategy, **real).load_images(holdout="train")) == train_part
    with pytest.raises(ConfigError, match="asked for 100 images"):  # a --subset given is not a ceiling
        SearchConfig(strategy="darts", subset=100, **real).load_images(holdout="train")


@pytest.mark.parametrize("steps", [3, 4, 5, 8])
def test_the_rotation_race_runs_at_any_step_count_from_three(steps):
    import torch

    from edgenas.space.registry import spec_from_dict
    from edgenas.search.race import HELD, rotation_accuracy

    spec = spec_from_dict({"space": "stages-cnn", "space_version": 1, "resolution": 8, "num_classes": 10,
                           "stem_channels": 0, "in_channels": 3, "projector": [], "extra": {},
                           "stages": [{"width": 8, "kernel": 3, "pool": True, "residual": 0}]})
    images = torch.randint(0, 256, (HELD + 16, 3, 8, 8), dtype=torch.uint8)
    out = rotation_accuracy(spec, images, [0.5] * 3, [0.25] * 3, steps, batch=16)
    assert 0 <= out[f"rot_acc_{steps}"] <= 100  # 4 steps divided by zero in the one-cycle schedule


def test_the_race_choice_is_the_best_learner_or_the_best_rank_average():
    from edgenas.search.race import race_choice

    scores = [{"rotation": 60.0, "naswot": 1.0}, {"rotation": 59.5, "naswot": 9.0}, {"rotation": 59.0, "naswot": 5.0}]
    assert race_choice(scores, "rotation") == 0
    assert race_choice(scores, "rotation+naswot") == 1  # rank sums 0 + 2, 1 + 0, 2 + 1
    tie = [{"rotation": 60.0, "naswot": 1.0}, {"rotation": 59.0, "naswot": 2.0}]  # ranks 0 + 1 against 1 + 0
    assert race_choice(tie, "rotation+naswot") == 0  # a tie goes to the better rotation learner
