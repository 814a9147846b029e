"""`edgenas deploy` end to end on this machine: real exports, real worker processes, a bundle an app can take.

The tiny run (16 px) is fine-tuned for two epochs; each candidate is measured with few runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")

from devices.transports.local import LocalTransport  # noqa: E402
from edgenas.cli.main import cli  # noqa: E402
from edgenas.deploy.bundle import choose  # noqa: E402
from tests.gpu import tensorrt_gpu  # noqa: E402

FAST = ["--warmup", "1", "--runs", "5", "--samples", "64", "--calib", "16"]


@pytest.fixture(scope="module")
def trained_run(tiny_run, tmp_path_factory):
    """The tiny search run with one fine-tuning (made once for the module)."""
    from edgenas.train import FinetuneConfig, run_finetune

    run = tmp_path_factory.mktemp("deploy") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain", "exports", "deploy"))
    run_finetune(FinetuneConfig(model=str(run), init="random", out=str(run / "finetune" / "random-f0.5-s0"),
                                **_options()))
    return run


def _options() -> dict:  # conftest's tiny_finetune_options, for a module-scoped fixture
    return dict(synthetic_size=240, epochs=2, min_steps=0, batch_size=16, warmup_epochs=1, eval_samples=100,
                progress=False, checkpoint_every=2, fraction=0.5, threads=1)


@pytest.fixture
def run(trained_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def deploy(*args):
    return CliRunner().invoke(cli, ["deploy", *map(str, args), *FAST])


def test_deploy_measures_every_candidate_and_bundles_the_fastest_that_keeps_its_accuracy(run, tmp_path):
    result = deploy(run, "--target", "local", "--formats", "onnx,openvino", "--precisions", "fp32,int8",
                    "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    assert "deploying random-f0.5-s0, its only fine-tuning" in result.stderr
    report = json.loads(result.stdout)
    bundle = run / "deploy" / "local"
    assert report["bundle"] == str(bundle)
    rows = report["candidates"]
    assert {(r["format"], r["precision"]) for r in rows} == {(f, p) for f in ("onnx", "openvino")
                                                            for p in ("fp32", "int8")}
    reference = report["reference_accuracy"]
    ok = [r for r in rows if "error" not in r]
    eligible = [r for r in ok if reference - r["accuracy"] <= report["max_drop_points"] + 1e-9]
    chosen = report["chosen"]
    assert chosen["p50_ms"] == min(r["p50_ms"] for r in eligible)
    assert [r["verdict"] for r in rows].count("chosen") == 1
    fp32 = [r["accuracy"] for r in ok if r["precision"] == "fp32"]
    assert all(abs(a - reference) <= 100 / 64 + 1e-6 for a in fp32)  # the FP32 artifacts agree with PyTorch

    files = {p.name for p in bundle.iterdir()}
    assert {chosen["artifact"], "manifest.json", "labels.txt", "predict.py", "README.md", "deploy.json",
            "latency_accuracy.png", "example.png"} <= files
    assert report["predict"] == f"python {bundle / 'predict.py'} {bundle / 'example.png'}"
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")]  # no partial or old bundle left
    manifest = json.loads((bundle / "manifest.json").read_text())
    (entry,) = manifest["artifacts"]
    assert entry["path"] == chosen["artifact"] and manifest["source"]["weights"] == "fine-tuned"
    from exporters.manifest import sha256_of
    assert sha256_of(bundle / entry["path"]) == entry["sha256"]
    card = (bundle / "README.md").read_text()
    assert "`example.png` is a held-out image of class `" in card
    tried = subprocess.run([sys.executable, str(bundle / "predict.py"), str(bundle / "example.png")],
                           capture_output=True, text=True, timeout=120)
    assert tried.returncode == 0 and tried.stdout.split()[0] in (bundle / "labels.txt").read_text().split()
    assert "## Why this artifact" in card and "**chosen**" in card and "latency_accuracy.png" in card
    assert len((bundle / "labels.txt").read_text().splitlines()) == entry["outputs"][0]["shape"][-1]

    # a second deploy measures nothing again and rebuilds the same bundle from the records
    records = run / "deploy" / "measurements" / "local"
    (lines,) = [len(p.read_text().splitlines()) for p in records.glob("*/records.jsonl")]
    again = deploy(run, "--target", "local", "--formats", "onnx,openvino", "--precisions", "fp32,int8",
                   "--threads", "1", "--json")
    assert again.exit_code == 0, again.output
    assert [len(p.read_text().splitlines()) for p in records.glob("*/records.jsonl")] == [lines]
    assert json.loads(again.stdout)["chosen"] == chosen


TENSORRT = pytest.mark.skipif(not tensorrt_gpu(), reason="needs TensorRT 8.5+, polygraphy and an NVIDIA GPU")


@pytest.mark.parametrize("fmt,precision", [("onnx", "int8"), ("tflite", "int8"), ("openvino", "fp32"),
                                           pytest.param("tensorrt", "fp16", marks=TENSORRT),
                                           pytest.param("tensorrt", "int8", marks=TENSORRT)])
def test_predict_py_runs_without_torch_and_agrees_with_the_bench_runner(run, tmp_path, fmt, precision):
    from PIL import Image

    from bench.runtimes.base import open_runner
    from edgenas.data import load_dataset

    result = deploy(run, "--target", "local", "--formats", fmt, "--precisions", precision, "--threads", "1",
                    "--out", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "bundle"
    entry = json.loads((bundle / "manifest.json").read_text())["artifacts"][0]
    held = load_dataset("synthetic", None, train=True, resolution=16, size=6, seed=0, holdout="val")
    paths = []
    for i, image in enumerate(held.images.permute(0, 2, 3, 1).numpy()):
        paths.append(tmp_path / f"image{i}.png")
        Image.fromarray(image).save(paths[-1])
    # predict.py in a python that cannot import torch (a board's)
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('no torch on this board')\n")
    out = subprocess.run([sys.executable, str(bundle / "predict.py"), *map(str, paths), "--json", "--top", "3"],
                         capture_output=True, text=True, env={"PYTHONPATH": str(blocker), "PATH": "/usr/bin:/bin"},
                         cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    predictions = [json.loads(line) for line in out.stdout.splitlines()]
    norm = entry["normalisation"]
    x = (held.images.permute(0, 2, 3, 1).numpy().astype(np.float32) * norm["scale"] - norm["mean"]) / norm["std"]
    labels = (bundle / "labels.txt").read_text().splitlines()
    assert entry["runtime"] == {"onnx": "ort", "tflite": "litert"}.get(fmt, fmt)
    assert entry["providers"] == (["CPUExecutionProvider"] if fmt == "onnx" else [])
    with open_runner(bundle / entry["path"], entry["runtime"]) as runner:  # TensorRT's: the same engine, cached
        for p, image in zip(predictions, x.transpose(0, 3, 1, 2)):
            logits = runner.run(np.ascontiguousarray(image[None], dtype=np.float32))[0][0]
            best = p["top"][0]
            assert best["index"] == int(np.argmax(logits)) and best["label"] == labels[best["index"]]
            assert len(p["top"]) == 3 and p["top"][0]["score"] >= p["top"][1]["score"]
    missing = subprocess.run([sys.executable, str(bundle / "predict.py"), str(tmp_path / "nope.png")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and missing.stderr.strip().splitlines()[-1].startswith("error: ")


def test_an_interrupted_deploy_leaves_no_bundle_and_resumes(run, monkeypatch):
    calls = []
    real = LocalTransport.run_job

    def dies_on_second(self, job, timeout=600):
        calls.append(job["artifact"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if killed during the second measurement
        return real(self, job, timeout)

    monkeypatch.setattr(LocalTransport, "run_job", dies_on_second)
    result = deploy(run, "--target", "local", "--formats", "onnx", "--precisions", "fp32,int8", "--threads", "1")
    assert result.exit_code == 130 and not (run / "deploy" / "local").exists()
    (records,) = (run / "deploy" / "measurements" / "local").glob("*/records.jsonl")
    assert len(records.read_text().splitlines()) == 1
    calls.clear()
    monkeypatch.setattr(LocalTransport, "run_job", lambda self, job, timeout=600: calls.append(1) or
                        real(self, job, timeout))
    result = deploy(run, "--target", "local", "--formats", "onnx", "--precisions", "fp32,int8", "--threads", "1")
    assert result.exit_code == 0, result.output
    assert len(calls) == 1 and (run / "deploy" / "local" / "deploy.json").is_file()


def test_no_artifact_within_max_drop_prints_the_table_and_writes_no_bundle(run, monkeypatch):
    real = LocalTransport.run_job

    def lossy_int8(self, job, timeout=600):  # a runtime whose INT8 kernels lose 50 points
        record = real(self, job, timeout)
        if "int8" in job["artifact"]:
            record["accuracy"] = max(0.0, record["accuracy"] - 50)
        return record

    monkeypatch.setattr(LocalTransport, "run_job", lossy_int8)
    result = deploy(run, "--target", "local", "--formats", "onnx", "--precisions", "int8", "--threads", "1")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no artifact is within 1 point of the FP32 accuracy" in errors[0]
    assert "too inaccurate" in result.output  # the table of candidates
    assert not (run / "deploy" / "local").exists()


def test_bad_input_is_one_line_and_writes_nothing(run, tiny_run, tmp_path):
    untrained = tmp_path / "untrained"
    shutil.copytree(tiny_run, untrained, ignore=shutil.ignore_patterns("finetune", "exports", "deploy", "eval"))
    cases = [
        ([untrained], "has no fine-tuned weights"),
        ([run, "--finetune", "nope"], "no finished fine-tuning 'nope'"),
        ([tmp_path / "missing"], "no run directory"),
        ([run, "--target", "nosuchboard"], "nosuchboard"),
        ([run, "--formats", "coreml"], "coreml"),
        ([run, "--precisions", "int4"], "int4"),
        ([run, "--max-drop", "-1"], "-1"),
        ([run, "--target", "rpi4", "--host", "pi@127.0.0.1:1"], "127.0.0.1"),
    ]
    for args, needle in cases:
        result = deploy(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
        assert len(lines) == 1 and needle in lines[0], (args, result.output)
    assert not (untrained / "deploy").exists() and not (run / "deploy").exists()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    result = deploy(run, "--out", tmp_path / "notes")
    assert result.exit_code == 2 and "is not an edgenas bundle" in result.output
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me" and not (run / "deploy").exists()


def test_choose_holds_every_artifact_to_the_fp32_network():
    def rec(fmt, prec, p50, acc, size=100):
        return {"format": fmt, "precision": prec, "p50_ms": p50, "accuracy": acc, "artifact_bytes": size,
                "plan": {"format": fmt, "precision": prec}}

    records = [rec("onnx", "fp32", 1.0, 80.0), rec("onnx", "int8", 0.4, 79.2), rec("tflite", "int8", 0.3, 78.5),
               {"error": "crashed", "plan": {"format": "openvino", "precision": "int8"}}]
    choice = choose(records, 1.0, reference=80.1)
    assert (choice.winner.format, choice.winner.precision) == ("onnx", "int8")
    assert {c.format + c.precision: c.verdict for c in choice.candidates} == {
        "onnxfp32": "eligible", "onnxint8": "chosen", "tfliteint8": "too inaccurate", "openvinoint8": "failed"}
    assert "faster but too inaccurate: tflite int8" in choice.reason
    assert choose(records, 2.0, reference=80.1).winner.format == "tflite"
    assert choose(records, 0.05, reference=80.1).winner is None
    tie = records[:1] + [rec("onnx", "fp16", 1.0, 80.0, size=50)]
    assert choose(tie, 0).winner.precision == "fp16"  # a tie in latency: the smaller file


def test_a_device_without_any_runtime_is_refused_before_anything_is_measured(run):
    base = getattr(sys, "_base_executable", None)  # the venv's own interpreter: numpy perhaps, runtimes perhaps not
    probe = subprocess.run([base, "-c", "import importlib.metadata as m, numpy\n"
                            "for n in ('onnxruntime', 'onnxruntime-gpu', 'openvino', 'ai-edge-litert', "
                            "'tflite-runtime'):\n"
                            "    try: m.version(n); print(n)\n"
                            "    except m.PackageNotFoundError: pass"], capture_output=True, text=True)
    if not base or probe.returncode != 0 or probe.stdout.strip():
        pytest.skip("no interpreter here with numpy and without every runtime")
    result = deploy(run, "--target", "local", "--python", base)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "none of the runtimes edgenas measures" in errors[0]
    assert not (run / "deploy").exists()


def test_tensorrt_is_a_candidate_where_it_and_polygraphy_are_installed():
    from edgenas.deploy.deploy import deploy_formats
    from edgenas.errors import ConfigError

    gpu_board = {"packages": {"onnxruntime-gpu": "1.18.0", "tensorrt": "10.3.0", "polygraphy": "0.49.9"}}
    assert deploy_formats(gpu_board, None, "jetson-orin-nano", "orin:22") == ("onnx", "tensorrt")
    no_polygraphy = {"packages": {"onnxruntime": "1.18.0", "tensorrt": "10.3.0"}}
    assert deploy_formats(no_polygraphy, None, "jetson-orin-nano", "orin:22") == ("onnx",)
    with pytest.raises(ConfigError, match=r"--formats tensorrt: its runtime \(tensorrt and polygraphy\) is not "
                                          r"installed on jetson-orin-nano \(orin:22\)"):
        deploy_formats(no_polygraphy, ["tensorrt"], "jetson-orin-nano", "orin:22")


def test_deploy_to_tensorrt_without_it_is_one_line_and_writes_nothing(run):
    if tensorrt_gpu():
        pytest.skip("TensorRT is installed here")
    result = deploy(run, "--target", "local", "--formats", "tensorrt")
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--formats tensorrt: its runtime (tensorrt and polygraphy) is not installed" \
        in errors[0]
    assert not (run / "deploy").exists()


def test_predict_py_of_a_tensorrt_bundle_without_tensorrt_says_what_to_install(run, tmp_path):
    if tensorrt_gpu():
        pytest.skip("TensorRT is installed here")
    result = deploy(run, "--target", "local", "--formats", "onnx", "--precisions", "fp32", "--threads", "1",
                    "--out", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "bundle" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["artifacts"][0]["runtime"] = "tensorrt"  # as deploy writes it when a TensorRT engine won
    manifest.write_text(json.dumps(data))
    out = subprocess.run([sys.executable, str(tmp_path / "bundle" / "predict.py"),
                          str(tmp_path / "bundle" / "example.png")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        "error: the tensorrt runtime is not installed: pip install polygraphy (and TensorRT: JetPack's, or tensorrt "
        "from pip)"]


def test_deploy_over_ssh_measures_on_the_board_and_names_it(run, sshd):
    """`edgenas deploy --target rpi4 --host ...` against the loopback sshd: artifacts and labelled images
    shipped, measured by the board's python at the profile's threads, the bundle named after the board."""
    result = deploy(run, "--target", "rpi4", "--host", sshd.spec, "--key", sshd.key, "--known-hosts",
                    sshd.known_hosts, "--python", sys.executable, "--formats", "tflite", "--precisions", "fp32,int8",
                    "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["device"] == "rpi4" and report["bundle"] == str(run / "deploy" / "rpi4")
    assert {r["threads"] for r in report["candidates"]} == {4}
    assert "on rpi4 (" in (run / "deploy" / "rpi4" / "README.md").read_text()
