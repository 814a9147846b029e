"""benchmarks/race_study.py: the raced candidates it reads back from a proxy search's run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from race_study import raced_specs, score_figures  # noqa: E402

from edgenas.models.cnns import fast_cnn_spec  # noqa: E402
from edgenas.space.stages import Stage, StageSpec  # noqa: E402


def _run(tmp_path: Path, specs, scores) -> Path:
    with open(tmp_path / "proxy.jsonl", "w") as f:
        for spec in specs:
            f.write(json.dumps({"sha256": spec.sha256(), "spec": spec.to_dict(), "naswot": 1.0}) + "\n")
    with open(tmp_path / "race.jsonl", "w") as f:
        for spec, score in zip(reversed(specs), scores):  # the race's order is not the sampling's
            f.write(json.dumps({"sha256": spec.sha256(), "steps": 200, "rot_acc_200": score,
                                "rot_acc_100": 0.0}) + "\n")
    return tmp_path


def test_raced_candidates_come_back_in_race_order_without_their_projector(tmp_path):
    a = StageSpec(stem_channels=8, stages=(Stage(16, 5, True, 0), Stage(24, 3, False, 2)), projector=(16, 16))
    b = fast_cnn_spec()
    rows = raced_specs(_run(tmp_path, [a, b], [61.5, 40.0]))
    assert [(name, score) for name, _, score, _ in rows] == [("cand00", 61.5), ("cand01", 40.0)]
    assert rows[0][1].stages == b.stages and rows[1][1].stages == a.stages
    assert all(spec.projector == () for _, spec, _, _ in rows)
    assert all(zero_cost == {"naswot": 1.0} for *_, zero_cost in rows)  # the search's own scores, for the study
    assert rows[1][1].describe() == "stem 8 | 16k5p r0 | 24k3 r2"  # the table's notation: StageSpec.describe
    assert rows[0][1].describe() == "stem 0 | 64k3p r1 | 128k3p r1 | 144k3p r1"


def test_a_run_without_a_race_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="not a finished proxy search with a race"):
        raced_specs(tmp_path)


def test_each_score_is_correlated_and_its_pick_placed_as_the_race_would_choose():
    rows = [{"network": f"cand{i:02d}", "rotation": rot, "naswot": nas, "accuracy": acc}
            for i, (rot, nas, acc) in enumerate([(60.0, 1.0, 70.0), (59.5, 9.0, 74.0), (59.0, 5.0, 72.0)])]
    rows.append({"network": "fast_cnn_050", "rotation": None, "accuracy": 99.0})  # not raced: not placed
    figures = {f["score"]: f for f in score_figures(rows)}
    assert set(figures) == {"rotation", "naswot", "rotation+naswot"}
    assert figures["rotation"] == {"score": "rotation", "spearman": -0.5, "pick": "cand00", "pick_accuracy": 70.0,
                                   "place": 3}
    assert figures["naswot"]["spearman"] == 1.0 and figures["naswot"]["place"] == 1
    both = figures["rotation+naswot"]  # rank sums 0 + 2, 1 + 0, 2 + 1: the search's race_choice
    assert both["pick"] == "cand01" and both["place"] == 1 and both["spearman"] == 0.5
