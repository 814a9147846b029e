"""``edgenas profile`` through the root group (baseline targets; arch.json tests live with the space)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgenas.cli.main import cli


def run(*args: str):
    return CliRunner().invoke(cli, ["profile", *args])


def test_help_names_the_defaults():
    result = run("--help")
    assert result.exit_code == 0, result.output
    assert "NAME_OR_RUN_DIR_OR_ARCH_JSON" in result.output
    assert "32 for a" in result.output  # default resolution is stated


def test_baseline_json():
    result = run("mobilenet_v2", "--width", "0.35", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["name"] == "mobilenet_v2" and data["kind"] == "baseline"
    assert data["resolution"] == 32 and data["width"] == 0.35 and data["num_classes"] == 10
    assert isinstance(data["params"], int) and isinstance(data["macs"], int)
    assert 0.35e6 < data["params"] < 0.45e6


def test_alias_width_and_human_output():
    result = run("mobilenet_v2_035", "--resolution", "32")
    assert result.exit_code == 0, result.output
    assert "params" in result.output and "MACs" in result.output and "32x32" in result.output
    assert "0.35" in result.output


def test_unknown_name_is_one_line_error():
    result = run("mobilenetv2")
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert "mobilenet_v2" in lines[0]  # close match suggested


def test_missing_json_path_is_one_line_error(tmp_path):
    result = run(str(tmp_path / "nope.json"))
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == [f"error: no such file or directory: {tmp_path / 'nope.json'}"]


@pytest.mark.parametrize("args", [["--resolution", "0"], ["--width", "0"], ["--width", "-1"], ["--num-classes", "0"]])
def test_bad_values_are_rejected(args):
    result = run("mobilenet_v2", *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_contradicting_alias_width():
    result = run("mobilenet_v2_035", "--width", "0.5")
    assert result.exit_code == 2
    assert result.output.startswith("error:")


def test_a_run_is_profiled_against_its_own_budgets(tmp_path):
    """A search run records its budgets in config.yaml: the share is of those (the flags still win)."""
    from edgenas.search.config import SearchConfig
    from edgenas.search.runner import run_search

    out = tmp_path / "run"
    run_search(SearchConfig(out=str(out), subset=96, resolution=16, projector=(16, 16), epochs=1, batch_size=8,
                            progress=False, threads=1, proxy_samples=4, proxy_batch=16, max_params=40_000,
                            max_macs=4_000_000))
    data = json.loads(run(str(out), "--json").output)
    assert data["budget_share"]["params"] == pytest.approx(data["params"] / 40_000, abs=1e-4)
    assert data["budget_share"]["macs"] == pytest.approx(data["macs"] / 4_000_000, abs=1e-4)
    data = json.loads(run(str(out), "--json", "--max-params", "1000000").output)
    assert data["budget_share"]["params"] == pytest.approx(data["params"] / 1_000_000, abs=1e-4)
    (out / "config.yaml").write_text(": not yaml [")  # a damaged config loses only the run's budgets
    data = json.loads(run(str(out), "--json").output)
    assert data["budget_share"]["macs"] == pytest.approx(data["macs"] / 100_000_000, abs=1e-4)
