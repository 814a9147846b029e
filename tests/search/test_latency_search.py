"""`edgenas search --latency-ms`: the latency table steers the search, the derived net meets the budget."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("onnxruntime")

from bench.latency_table import LatencyTable  # noqa: E402
from edgenas.errors import BudgetError, ConfigError  # noqa: E402
from edgenas.latency.build import build_table  # noqa: E402
from edgenas.latency.keys import Layout  # noqa: E402
from edgenas.latency.measure import Timing  # noqa: E402
from edgenas.search.config import SearchConfig  # noqa: E402
from edgenas.search.runner import run_search  # noqa: E402
from edgenas.space.ops import DEFAULT_OPS  # noqa: E402


@pytest.fixture(scope="module")
def table_path(tmp_path_factory):
    """A real table of the tiny search layout, measured here (onnxruntime, 1 thread)."""
    from devices.profiles import load_profile
    from devices.transports.local import LocalTransport

    out = tmp_path_factory.mktemp("luts")
    layout = Layout(channels=4, cells=2, nodes=2, resolution=16)
    return build_table([layout], DEFAULT_OPS, LocalTransport().run_job, load_profile("local"), {}, runtime="ort",
                       threads=1, out=out, calibration_networks=4, timing=Timing(2, 20))


def _fastest(table_path, options):
    from edgenas.search.cost import LatencyModel
    from edgenas.search.derive import spec_from_supernet
    from edgenas.space.network import DARTSAutoSSL

    net = DARTSAutoSSL(options["channels"], options["cells"], options["nodes"], DEFAULT_OPS, 3, options["projector"])
    template = spec_from_supernet(net, resolution=options["resolution"], num_classes=10)
    model = LatencyModel(template, net.op_names, LatencyTable.load(table_path))
    return model, net


def test_expected_latency_is_differentiable_and_bounded(table_path, tiny_search_options):
    model, net = _fastest(table_path, tiny_search_options)
    wn, wr = net.arch_weights()
    expected = model.expected(wn, wr)
    expected.backward()
    assert net.alpha_normal.grad is not None and net.alpha_normal.grad.abs().sum() > 0
    assert float(expected.detach()) > 0
    # fastest() is exact: the law is a sum over edges, so no genotype of the space is predicted faster
    # (a comparison with the uniform expectation would hang on measurement noise: it averages in zero ops)
    from edgenas.latency.keys import Layout
    from edgenas.latency.spaces import sample_specs

    layout = Layout(channels=tiny_search_options["channels"], cells=tiny_search_options["cells"],
                    nodes=tiny_search_options["nodes"], resolution=tiny_search_options["resolution"])
    _, _, fastest = model.fastest()
    others = [model.genotype_latency(s.normal, s.reduce) for s in sample_specs(30, 0, [layout], DEFAULT_OPS)]
    assert 0 < fastest <= min(others) + 1e-9


def test_search_meets_the_latency_budget(tmp_path, table_path, tiny_search_options):
    model, _ = _fastest(table_path, tiny_search_options)
    budget = model.fastest()[2] * 1.3
    result = run_search(SearchConfig(**tiny_search_options, out=str(tmp_path / "r"), target="local",
                                     lut=str(table_path), latency_ms=budget, threads=1))
    s = result.summary
    assert s["predicted_latency_ms"] <= budget * 0.95 and s["latency_budget_ms"] == budget
    assert s["measured_latency_ms"] > 0 and s["latency_measured_on"] == "local"
    assert "latency predicted" in (tmp_path / "r" / "report.md").read_text()
    steps = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert all(r["expected_latency_ms"] > 0 for r in steps if r.get("event") == "step")


def test_impossible_budget_fails_before_training(tmp_path, table_path, tiny_search_options):
    with pytest.raises(BudgetError, match="no network in this space meets"):
        run_search(SearchConfig(**tiny_search_options, out=str(tmp_path / "r"), target="local",
                                lut=str(table_path), latency_ms=1e-4))
    assert not (tmp_path / "r" / "search.ckpt").exists()


def test_table_of_another_device_or_space_is_refused(tmp_path, table_path, tiny_search_options):
    from bench.latency_table import LutError

    with pytest.raises(LutError, match="is for device 'local', not 'rpi4'"):
        run_search(SearchConfig(**tiny_search_options, out=str(tmp_path / "a"), target="rpi4",
                                lut=str(table_path), latency_ms=1.0))
    data = json.loads(table_path.read_text())
    data["space_version"] = 99
    (tmp_path / "t.json").write_text(json.dumps(data))
    with pytest.raises(LutError, match="space_version 99"):
        run_search(SearchConfig(**tiny_search_options, out=str(tmp_path / "b"), lut=str(tmp_path / "t.json")))
    small = {**tiny_search_options, "channels": 6}  # a layout the table was not built for
    with pytest.raises(LutError, match="no entry"):  # never counted as 0 ms
        run_search(SearchConfig(**small, out=str(tmp_path / "c"), lut=str(table_path), latency_ms=1.0))
    # without a latency budget the table only reports: the search goes on without a prediction
    result = run_search(SearchConfig(**small, out=str(tmp_path / "d"), lut=str(table_path)))
    assert "predicted_latency_ms" not in result.summary


def test_latency_budget_needs_a_table():
    with pytest.raises(ConfigError, match="needs --target"):
        SearchConfig(strategy="darts", latency_ms=1.0)
    with pytest.raises(ConfigError, match="latency-ms must be > 0"):
        SearchConfig(strategy="darts", latency_ms=0.0, target="local")


torch.set_num_threads(1)
