"""benchmarks/race_score.py: which networks it can score with a search's race."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from race_score import stage_spec  # noqa: E402


def test_fast_cnn_at_a_width_and_arch_files_are_stage_networks(tmp_path):
    spec = stage_spec("fast_cnn_050", (16, 16))
    assert [s.width for s in spec.stages] == [32, 64, 72] and spec.projector == (16, 16)
    spec.save(tmp_path / "arch.json")
    assert stage_spec(str(tmp_path / "arch.json"), ()).stages == spec.stages


def test_other_baselines_are_refused():
    with pytest.raises(SystemExit, match="not a stage-space network"):
        stage_spec("resnet20", ())
