"""Latency tables: keys, the table format and predictor, a real build and validation on this machine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bench.latency_table import (
    LatencyTable,
    LutError,
    MissingEntryError,
    fit_calibration,
    spearman,
)
from edgenas.cli.main import cli
from edgenas.latency.keys import Layout, layout_keys
from edgenas.latency.spaces import arch_keys, sample_specs

OPS = ("ds_conv", "irb_e3", "se", "identity")
TINY = Layout(channels=4, cells=2, nodes=2, resolution=16)


def test_keys_follow_the_network():
    (spec,) = sample_specs(1, 0, [Layout()], OPS)
    keys = arch_keys(spec)
    assert keys[0] == "stem/c3-24/r32" and keys[-1] == "head/c96-10/r8"
    # 3 cells x (2 pre-processing convs + 2 edges x 3 nodes), stem and head
    assert len(keys) == 3 * (2 + 6) + 2
    assert set(keys) <= set(layout_keys(Layout(), OPS))
    assert "pre/fr/c24-32/r32" in keys  # the cell after a reduction pre-processes s0 with a factorized reduce


def test_keys_need_no_torch(tmp_path):
    (spec,) = sample_specs(1, 3, [Layout()], OPS)
    spec.save(tmp_path / "arch.json")
    code = ("import sys; sys.modules['torch'] = None\n"
            "from edgenas.space.spec import ArchSpec\nfrom edgenas.latency.spaces import arch_keys\n"
            f"print(len(arch_keys(ArchSpec.load({str(tmp_path / 'arch.json')!r}))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "26", done.stderr


def test_sampling_is_seeded_and_valid():
    a, b = sample_specs(5, 7, [Layout(), Layout(channels=16)], OPS), sample_specs(5, 7, [Layout()], OPS)
    assert sample_specs(5, 7, [Layout(), Layout(channels=16)], OPS) == a and a != b
    assert all(len(node) == 2 for spec in a for node in spec.normal.nodes)


def _table(**kw):
    data = {"schema": 1, "device": "local", "runtime": "ort", "precision": "fp32", "threads": 1, "space": "darts",
            "space_version": 1, "entries": {"x": {"p50_ms": 0.02, "net_ms": 0.01}, "y": {"p50_ms": 0.05, "net_ms": 0.04}},
            "calibration": {"a": 2.0, "b": 0.001, "c": 0.1}}
    data.update(kw)
    return LatencyTable(data, "t.json")


def test_predict_check_and_missing_entries():
    table = _table()
    assert table.predict(["x", "y", "y"]) == pytest.approx(2 * 0.09 + 3 * 0.001 + 0.1)
    with pytest.raises(MissingEntryError, match="no entry 'z'"):
        table.predict(["x", "z"])
    with pytest.raises(LutError, match="is for device 'local', not 'rpi4'"):
        table.check(device="rpi4", runtime="ort")
    with pytest.raises(LutError, match="space_version 1, not 2"):
        table.check(space_version=2)
    table.check(device="local", runtime="ort", threads=1)
    assert _table(calibration=None).predict(["x", "y"]) == pytest.approx(0.07)  # uncalibrated: sum of p50


@pytest.mark.parametrize("change, match", [({"entries": {"x": {"p50_ms": "fast"}}}, "entry 'x' lacks"),
                                           ({"calibration": {"a": 1.0}}, "'calibration' must hold")])
def test_malformed_entries_and_calibration(change, match):
    with pytest.raises(LutError, match=match):
        _table(**change)


@pytest.mark.parametrize("text, match", [("{", "not a readable"), ("[]", "not a JSON object"),
                                         ('{"device": "x"}', "missing")])
def test_corrupt_tables(tmp_path, text, match):
    (tmp_path / "t.json").write_text(text)
    with pytest.raises(LutError, match=match):
        LatencyTable.load(tmp_path / "t.json")
    with pytest.raises(LutError, match="no latency table"):
        LatencyTable.load(tmp_path / "missing.json")


def test_calibration_recovers_a_linear_law():
    sums = [(0.1, 20), (0.2, 20), (0.3, 26), (0.5, 26), (0.4, 32)]
    measured = [1.5 * s + 0.002 * n + 0.05 for s, n in sums]
    cal = fit_calibration(sums, measured)
    assert cal["a"] == pytest.approx(1.5) and cal["b"] == pytest.approx(0.002) and cal["c"] == pytest.approx(0.05)
    assert cal["mape_pct"] < 1e-6
    same = fit_calibration([(0.1, 20), (0.3, 20)], [0.2, 0.4])  # one block count: b cannot be told from c
    assert same["b"] == 0 and same["a"] == pytest.approx(1.0) and same["c"] == pytest.approx(0.1)


def test_calibration_never_predicts_a_negative_latency():
    """A few noisy networks once fitted c < 0 and predicted -0.19 ms for the fastest net: costs stay >= 0."""
    sums = [(0.06, 12), (0.09, 14), (0.05, 12), (0.12, 16)]
    measured = [0.05, 0.049, 0.08, 0.06]  # noise: larger sums are not slower
    cal = fit_calibration(sums, measured)
    assert min(cal["a"], cal["b"], cal["c"]) >= 0
    assert cal["a"] * 0.0 + cal["b"] * 10 + cal["c"] > 0 or cal["a"] > 0


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9487, abs=1e-3)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_build_predict_validate_on_this_machine(tmp_path):
    """A real table of a tiny layout, measured here with onnxruntime; resumable; predicts its own networks."""
    pytest.importorskip("onnxruntime")
    layout = ["--channels", "4", "--cells", "2", "--nodes", "2", "--resolution", "16", "--ops", ",".join(OPS)]
    result = run("lut", "build", "--device", "local", "--threads", "1", *layout, "--runs", "20", "--warmup", "2",
                 "--calibration-networks", "4", "--out", tmp_path / "luts")
    assert result.exit_code == 0, result.output
    path = tmp_path / "luts" / "local-ort-fp32.json"
    table = LatencyTable.load(path)
    assert not table.estimated and table.threads == 1 and table.calibration["networks"] == 4
    assert set(layout_keys(TINY, OPS)) <= set(table.entries)
    assert not path.with_name(path.name + ".partial.jsonl").exists()

    assert run("space", "sample", "--n", "3", "--seed", "5", *layout, "--out", tmp_path / "archs").exit_code == 0
    archs = sorted((tmp_path / "archs").glob("arch-*.json"))
    result = run("lut", "predict", "--lut", path, *archs, "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == 3 and all(r["predicted_ms"] > 0 and not r["estimated"] for r in rows)

    result = run("lut", "validate", "--device", "local", "--lut", path, "--samples", "4", "--runs", "20",
                 "--warmup", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["n"] == 4 and report["mape_pct"] < 50 and (tmp_path / "luts" / "local-ort-fp32.validate.png").is_file()


def test_build_resumes_from_the_partial_file(tmp_path, monkeypatch):
    pytest.importorskip("onnxruntime")
    from devices.profiles import load_profile
    from devices.transports.local import LocalTransport
    from edgenas.latency.build import build_table
    from edgenas.latency.measure import Timing

    transport = LocalTransport()
    calls = []

    def run_job(job, timeout):
        calls.append(job["artifact"])
        if len(calls) == 5:
            raise KeyboardInterrupt
        return transport.run_job(job, timeout)

    kwargs = dict(runtime="ort", threads=1, out=tmp_path, calibration_networks=2, timing=Timing(1, 5))
    with pytest.raises(KeyboardInterrupt):
        build_table([TINY], OPS, run_job, load_profile("local"), {}, **kwargs)
    assert len((tmp_path / "local-ort-fp32.json.partial.jsonl").read_text().splitlines()) == 4
    first = len(calls)
    calls.clear()
    build_table([TINY], OPS, lambda j, t: calls.append(j) or transport.run_job(j, t), load_profile("local"), {},
                **kwargs)
    blocks = len(layout_keys(TINY, OPS)) + len({k.split("/")[-2] + k.split("/")[-1]
                                                for k in layout_keys(TINY, OPS)})
    assert first == 5 and len(calls) < blocks + 2  # the 4 finished blocks were not measured again


@pytest.mark.parametrize("args, message", [
    (["lut", "predict", "--lut", "{tmp}/nope.json", "{arch}"], "no latency table"),
    (["lut", "build", "--device", "nowhere"], "unknown device"),
    (["lut", "build", "--resolution", "30", "--cells", "3"], "divisible"),
    (["space", "sample", "--n", "2", "--ops", "zero", "--out", "{tmp}/a"], "no op but zero"),
])
def test_bad_input(tmp_path, args, message):
    (spec,) = sample_specs(1, 0, [Layout()], OPS)
    spec.save(tmp_path / "arch.json")
    result = run(*[a.format(tmp=tmp_path, arch=tmp_path / "arch.json") for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output


def test_int8_table_is_its_own_table(tmp_path):
    """An INT8 table (blocks quantized with the export tools) never stands in for an FP32 one."""
    pytest.importorskip("onnxruntime")
    from devices.profiles import load_profile
    from devices.transports.local import LocalTransport
    from edgenas.latency.build import build_table
    from edgenas.latency.measure import Timing

    tiny = Layout(channels=4, cells=1, nodes=1, resolution=8)
    path = build_table([tiny], ("ds_conv", "identity"), LocalTransport().run_job, load_profile("local"), {},
                       runtime="ort", precision="int8", threads=1, out=tmp_path, calibration_networks=2,
                       timing=Timing(1, 5))
    table = LatencyTable.load(path)
    assert path.name == "local-ort-int8.json" and table.precision == "int8"
    with pytest.raises(LutError, match="precision 'int8', not 'fp32'"):
        table.check(precision="fp32")


def test_calibration_of_identical_networks_fits_the_offset():
    cal = fit_calibration([(0.1, 20), (0.1, 20)], [0.3, 0.32])
    assert cal["a"] == 1 and cal["b"] == 0 and cal["c"] == pytest.approx(0.21)


def test_calibration_without_a_slope_keeps_the_sums_law():
    """Noise that hides the sums' spread must not flatten every op to the same cost (a = 0)."""
    sums = [(0.05, 12), (0.10, 12), (0.15, 12)]
    cal = fit_calibration(sums, [0.30, 0.28, 0.29])  # larger sums measured no slower
    assert cal["a"] == 1 and cal["b"] == 0 and cal["c"] == pytest.approx((0.25 + 0.18 + 0.14) / 3)
