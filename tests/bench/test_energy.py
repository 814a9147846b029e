"""Energy per inference (bench/energy.py): tegrastats parsing and sampling, RAPL counters, absent where unreadable.

This machine has neither a Jetson nor readable RAPL counters, so the meters are
driven here by what they read: tegrastats lines in the formats JetPack prints
(a stand-in executable prints them on a timer) and a powercap tree whose counter
advances with every call. What a real board reads is not verified here.
"""

from __future__ import annotations

import os
import stat
import time

import pytest

from bench.energy import RaplMeter, board_power, open_meter, parse_tegrastats, rapl_zones

ORIN_NANO = ("12-03-2026 10:41:42 RAM 2314/7620MB (lfb 5x4MB) SWAP 0/3810MB (cached 0MB) CPU [3%@1510,1%@1510,"
             "0%@1510,0%@1510,2%@1510,0%@1510] GR3D_FREQ 0% cpu@47.5C soc2@46.9C VDD_IN 4937mW/5012mW "
             "VDD_CPU_GPU_CV 593mW/601mW VDD_SOC 1463mW/1470mW")
NANO = ("RAM 1620/3964MB (lfb 401x4MB) SWAP 0/1982MB (cached 0MB) CPU [5%@1479,2%@1479,1%@1479,0%@1479] "
        "EMC_FREQ 0% GR3D_FREQ 0% PLL@31C CPU@33.5C PMIC@100C GPU@32C AO@40C thermal@32.75C POM_5V_IN 2557/2557 "
        "POM_5V_GPU 0/0 POM_5V_CPU 529/529")
AGX_ORIN = ("RAM 4314/30536MB (lfb 5863x4MB) CPU [0%@729,0%@729] GR3D_FREQ 0% VDD_GPU_SOC 3066mW/3066mW "
            "VDD_CPU_CV 766mW/766mW VIN_SYS_5V0 3809mW/3809mW VDDQ_VDD2_1V8AO 403mW/403mW")


def test_tegrastats_rails_and_the_board_input():
    assert parse_tegrastats(ORIN_NANO) == {"VDD_IN": 4.937, "VDD_CPU_GPU_CV": 0.593, "VDD_SOC": 1.463}
    assert board_power(parse_tegrastats(ORIN_NANO)) == (4.937, "board input rail VDD_IN")
    assert board_power(parse_tegrastats(NANO)) == (2.557, "board input rail POM_5V_IN")
    watts, scope = board_power(parse_tegrastats(AGX_ORIN))  # no input rail: the sum of the module's rails
    assert watts == pytest.approx(3.066 + 0.766 + 3.809 + 0.403) and scope.startswith("sum of the rails")
    assert parse_tegrastats("RAM 1620/3964MB SWAP 0/1982MB") == {} and board_power({}) is None


def test_tegrastats_sampling_gives_power_times_duration(tmp_path, monkeypatch):
    tool = tmp_path / "tegrastats"  # prints a line every interval, as the real one does (idle 2 W, busy 5 W)
    tool.write_text("#!/bin/sh\nwhile true; do if [ -f busy ]; then w=5000; else w=2000; fi; "
                    "echo \"RAM 1/2MB VDD_IN ${w}mW/${w}mW VDD_SOC 900mW/900mW\"; sleep 0.02; done\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    meter = open_meter(rapl_root=tmp_path / "no-powercap")
    assert meter is not None and meter.source == "tegrastats"
    meter.interval_ms = 20
    busy = tmp_path / "busy"

    def call():
        busy.touch()
        time.sleep(0.005)

    record = meter.measure(call, seconds=0.5, idle_seconds=0.3).to_record()
    assert record["scope"] == "board input rail VDD_IN" and record["inferences"] > 10
    assert record["power_w"] == pytest.approx(5.0, abs=0.8)  # a sample or two may straddle the phase's edges
    assert record["idle_power_w"] == pytest.approx(2.0, abs=0.1)
    assert record["mj_per_inference"] == pytest.approx(1e3 * record["power_w"] * record["seconds"]
                                                       / record["inferences"], rel=1e-3)
    assert record["active_mj_per_inference"] < record["mj_per_inference"]


def _zone(root, name, energy, max_range=10**6):
    zone = root / name
    zone.mkdir(parents=True)
    (zone / "energy_uj").write_text(str(energy))
    (zone / "max_energy_range_uj").write_text(str(max_range))
    (zone / "name").write_text("package-" + name.split(":")[1] + "\n")
    return zone


def test_rapl_counts_the_package_energy_of_the_phase_across_a_wrap(tmp_path):
    root = tmp_path / "powercap"
    zone = _zone(root, "intel-rapl:0", 999_000)  # 1,000 uJ before its wrap at 1,000,000
    _zone(root, "intel-rapl:0:0", 5)  # a sub-zone (the cores) is inside the package: not counted again
    (root / "intel-rapl:1").mkdir()  # an unreadable package: left out
    assert rapl_zones(root) == [zone]

    def call():  # each inference costs 250 uJ
        value = (int((zone / "energy_uj").read_text()) + 250) % 10**6
        (zone / "energy_uj").write_text(str(value))

    record = RaplMeter(rapl_zones(root)).measure(call, seconds=0.05, idle_seconds=0.01).to_record()
    assert record["source"] == "rapl" and "package-0" in record["scope"]
    assert record["mj_per_inference"] == pytest.approx(0.25)
    assert record["idle_power_w"] == 0.0 and record["active_mj_per_inference"] == pytest.approx(0.25)


def test_no_meter_no_energy_phase(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no tegrastats
    assert open_meter(rapl_root=tmp_path / "none") is None
    frozen = _zone(tmp_path / "pc", "intel-rapl:0", 42)  # a counter that never moves reads as no energy
    assert RaplMeter([frozen]).measure(lambda: None, seconds=0.01, idle_seconds=0) is None


def test_a_measurement_records_energy_as_unknown_where_nothing_is_readable(tmp_path):
    from bench.measure import MeasureConfig, measure
    from bench.errors import BenchError
    from tests.bench.tiny_models import make_onnx

    pytest.importorskip("onnxruntime")
    if open_meter() is not None:
        pytest.skip("this machine has a readable power meter")
    path = make_onnx(tmp_path / "tiny.onnx", [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    record = measure(path, config=MeasureConfig(warmup=1, runs=3, energy_seconds=0.1))
    assert "energy" in record and record["energy"] is None  # unknown, not zero
    with pytest.raises(BenchError, match="energy_seconds"):
        MeasureConfig(energy_seconds=-1)
