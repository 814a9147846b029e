"""benchmarks/race_study.py: the raced candidates it reads back from a proxy search's run directory."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from race_study import raced_specs  # noqa: E402

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
    assert [(name, score) for name, _, score in rows] == [("cand00", 61.5), ("cand01", 40.0)]
    assert rows[0][1].stages == b.stages and rows[1][1].stages == a.stages
    assert all(spec.projector == () for _, spec, _ in rows)
    assert rows[1][1].describe() == "stem 8 | 16k5p r0 | 24k3 r2"  # the table's notation: StageSpec.describe
    assert rows[0][1].describe() == "stem 0 | 64k3p r1 | 128k3p r1 | 144k3p r1"


def test_a_run_without_a_race_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="not a finished proxy search with a race"):
        raced_specs(tmp_path)
