"""Analytic prior latency tables: the shipped files, the roofline, and where tables are found."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path

import pytest

from bench.latency_table import LatencyTable
from devices.profiles import load_profile
from edgenas.errors import ConfigError
from edgenas.latency.files import SHIPPED_DIR, find_table
from edgenas.latency.keys import Layout, layout_keys
from edgenas.latency.prior import (
    SHIPPED_DEVICES,
    block_features,
    estimate_ms,
    glue_features,
    prior_table,
)
from edgenas.latency.spaces import arch_keys, sample_specs

SHIPPED = sorted(SHIPPED_DIR.glob("*.json"))


def test_every_shipped_device_has_a_table():
    names = {LatencyTable.load(p).device for p in SHIPPED}
    assert names == set(SHIPPED_DEVICES)
    for device in SHIPPED_DEVICES:
        profile = load_profile(device)
        assert find_table(device, profile.runtime, "fp32", dirs=[SHIPPED_DIR]) is not None


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_table_is_estimated_complete_and_predicts(path):
    table = LatencyTable.load(path)
    profile = load_profile(table.device)
    assert table.estimated and "(estimated)" in table.label
    assert table.estimated_by.startswith("analytic roofline")
    assert table.replace_with == f"edgenas lut build --device {table.device} --host USER@HOST"
    assert table.runtime == profile.runtime and table.threads == profile.threads and table.precision == "fp32"
    assert path.name == f"{table.device}-{table.runtime}-fp32.json"
    layouts = [Layout(**d) for d in table.layouts]
    assert set(layouts) == {Layout(), Layout(channels=16), Layout(resolution=96)}
    for layout in layouts:
        missing = set(layout_keys(layout, table.ops)) - set(table.entries)
        assert not missing, missing
    assert all(e["p50_ms"] >= e["net_ms"] >= 0 and e["empty_ms"] > 0 for e in table.entries.values())
    for spec in sample_specs(5, 0, layouts, table.ops):
        assert table.predict(arch_keys(spec)) > 0


def test_shipped_tables_are_what_the_code_computes():
    """The data files are regenerated with ``python -m edgenas.latency.prior --write`` after a change of the model."""
    path = find_table("rpi4", "litert", dirs=[SHIPPED_DIR])
    shipped = json.loads(path.read_text())
    layouts = [Layout(**d) for d in shipped["layouts"]]
    fresh = prior_table(load_profile("rpi4"), layouts, shipped["ops"])
    assert fresh["entries"] == shipped["entries"] and fresh["calibration"] == shipped["calibration"]


def test_block_features_count_like_the_profiler():
    from edgenas.latency.blocks import key_module
    from edgenas.profiler import count_macs
    from exporters.freeze import freeze

    for key in ("op/ds_conv_se/c8/s2/r32", "op/irb_e6/c16/s1/r16", "pre/fr/c24-16/r32", "head/c48-10/r8",
                "stem/c3-24/r32"):
        module, shape = key_module(key)
        assert block_features(key)["macs"] == count_macs(freeze(module), shape)
    assert block_features("op/identity/c8/s1/r32")["layers"] == 0
    dw = block_features("op/ds_conv/c8/s1/r32")
    assert dw["dw_macs"] == 8 * 9 * 32 * 32 and dw["layers"] == 2  # dw conv (+ fused ReLU), pw conv
    assert block_features("op/ds_conv/c8/s1/r32", "int8")["act_bytes"] == dw["act_bytes"] / 4
    assert glue_features("op/se/c8/s2/r32", 3)["layers"] > 0 and glue_features("stem/c3-24/r32", 3)["layers"] == 0


FEATURES = [
    {"macs": 1e5, "dw_macs": 0.0, "weight_bytes": 1e3, "act_bytes": 3e4, "layers": 2.0},   # overhead-bound
    {"macs": 5e7, "dw_macs": 1e6, "weight_bytes": 1e5, "act_bytes": 1e5, "layers": 3.0},   # compute-bound
    {"macs": 1e5, "dw_macs": 1e5, "weight_bytes": 1e3, "act_bytes": 5e7, "layers": 3.0},   # memory-bound
]


@pytest.mark.parametrize("device", SHIPPED_DEVICES)
@pytest.mark.parametrize("features", FEATURES)
def test_roofline_is_monotone(device, features):
    profile = load_profile(device)
    base = estimate_ms(features, profile)
    assert base > 0
    for name in ("macs", "weight_bytes", "act_bytes", "layers"):
        for factor in (1.5, 10.0):
            assert estimate_ms({**features, name: features[name] * factor + 1}, profile) >= base
    # moving MACs to depthwise convs (less efficient) is never faster
    assert estimate_ms({**features, "dw_macs": features["macs"]}, profile) >= base
    for precision in ("fp32", "int8"):
        times = [estimate_ms(features, profile, precision, threads) for threads in range(1, profile.cores + 3)]
        assert all(b <= a for a, b in itertools.pairwise(times)), times
        assert times[-1] == times[profile.cores - 1]  # threads beyond the cores change nothing
    assert estimate_ms(features, profile, "int8") <= base


def test_faster_board_is_faster():
    block = block_features("op/irb_e6/c16/s1/r32")
    assert estimate_ms(block, load_profile("rpi5")) < estimate_ms(block, load_profile("rpi4"))
    assert estimate_ms(block, load_profile("jetson-orin-nano")) < estimate_ms(block, load_profile("jetson-nano"))


def test_missing_profile_figure_is_an_error():
    profile = dataclasses.replace(load_profile("rpi4"), mem_bandwidth_gbs=None)
    with pytest.raises(ConfigError, match="mem_bandwidth_gbs"):
        estimate_ms(FEATURES[0], profile)


def test_jetson_table_says_it_models_the_cpu():
    table = LatencyTable.load(find_table("jetson-nano", "ort", dirs=[SHIPPED_DIR]))
    assert any("CPU only" in note for note in table.notes)


def _table(directory: Path, device: str = "rpi4", runtime: str = "litert") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{device}-{runtime}-fp32.json"
    path.write_text("{}")
    return path


def test_find_table_precedence(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("EDGENAS_LUTS_DIR", raising=False)
    assert find_table("rpi4", "litert") == SHIPPED_DIR / "rpi4-litert-fp32.json"
    assert find_table("rpi4", "litert", "int8") is None
    assert find_table("nowhere", "ort") is None

    cache = _table(tmp_path / "home" / ".cache" / "edgenas" / "luts")
    assert find_table("rpi4", "litert") == cache
    local = _table(tmp_path / "luts")
    assert find_table("rpi4", "litert").resolve() == local.resolve()
    first, second = tmp_path / "env1", tmp_path / "env2"
    env = _table(second)
    monkeypatch.setenv("EDGENAS_LUTS_DIR", f"{first}{os.pathsep}{second}")
    assert find_table("rpi4", "litert") == env
    assert find_table("rpi4", "litert", dirs=[tmp_path / "luts"]) == tmp_path / "luts" / "rpi4-litert-fp32.json"
    assert find_table("rpi4", "litert", dirs=[tmp_path / "empty"]) is None


def test_module_entry_writes_tables(tmp_path, capsys):
    from edgenas.latency.prior import main

    assert main([]) == 0 and "--write" in capsys.readouterr().out
    assert main(["--write", "--out", str(tmp_path), "--device", "rpi5"]) == 0
    table = LatencyTable.load(tmp_path / "rpi5-litert-fp32.json")
    assert table.estimated and "estimated" in capsys.readouterr().out
