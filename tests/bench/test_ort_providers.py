"""onnxruntime's execution providers: ``providers=auto`` (the Jetson profiles' default) takes the GPU ones present,
and every record says which providers ran. The GPU case runs only where onnxruntime has a GPU provider."""

from __future__ import annotations

import dataclasses

import pytest

ort = pytest.importorskip("onnxruntime")

from bench.measure import MeasureConfig, measure  # noqa: E402
from bench.runtimes.base import RunnerOptions, open_runner  # noqa: E402
from bench.runtimes.ort import GPU_PROVIDERS  # noqa: E402
from devices.errors import DeviceProfileError  # noqa: E402
from devices.profiles import DeviceProfile, load_profile  # noqa: E402
from tests.bench.tiny_models import make_onnx  # noqa: E402

W = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]
GPU = [p for p in GPU_PROVIDERS if p in ort.get_available_providers()]


def test_auto_takes_the_gpu_providers_present_then_the_cpu(tmp_path):
    path = make_onnx(tmp_path / "tiny.onnx", W)
    with open_runner(path, "ort", RunnerOptions(extra=(("providers", "auto"),))) as runner:
        assert runner.providers[-1] == "CPUExecutionProvider"
        assert runner.providers[:-1] == [p for p in GPU if p in runner.providers]
    record = measure(path, "ort", RunnerOptions(extra=(("providers", "auto"),)),
                     MeasureConfig(warmup=1, runs=3, energy_seconds=0))
    assert record["providers"][-1] == "CPUExecutionProvider" and record["options"] == {"providers": "auto"}


@pytest.mark.skipif(not GPU, reason="onnxruntime here has no GPU execution provider")
def test_auto_runs_on_the_gpu_where_there_is_one(tmp_path):
    path = make_onnx(tmp_path / "tiny.onnx", W)
    record = measure(path, "ort", RunnerOptions(extra=(("providers", "auto"),)),
                     MeasureConfig(warmup=5, runs=20, energy_seconds=0))
    assert record["providers"][0] in GPU_PROVIDERS


def test_the_jetson_profiles_default_to_auto_and_the_command_line_wins(tmp_path):
    from edgenas.deploy.bench import BenchOptions, job_for
    from bench.plan import resolve_targets

    path = make_onnx(tmp_path / "tiny.onnx", W)
    (target,) = resolve_targets([str(path)])
    jetson = load_profile("jetson-orin-nano")
    assert jetson.runtime_options == {"ort": {"providers": "auto"}}
    assert job_for(target, BenchOptions(), jetson, None)["extra"] == [["providers", "auto"]]
    mine = BenchOptions(extra=(("providers", "CPUExecutionProvider"),))
    assert job_for(target, mine, jetson, None)["extra"] == [["providers", "CPUExecutionProvider"]]
    assert job_for(target, BenchOptions(), load_profile("rpi4"), None)["extra"] == []


def test_bad_runtime_options_are_refused():
    base = dataclasses.asdict(load_profile("rpi4"))
    base.pop("probed"), base.pop("source")
    for bad, needle in (({"tvm": {"x": "1"}}, "no runtime 'tvm'"),
                        ({"ort": {"providers": 3}}, "must map setting names to strings")):
        with pytest.raises(DeviceProfileError, match=needle):
            DeviceProfile.from_dict({**base, "runtime_options": bad})
