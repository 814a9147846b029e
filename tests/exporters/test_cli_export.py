"""``edgenas export`` through the root group: help, a run directory, a baseline, and bad input (exit 2, one line)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edgenas.cli import main as cli_main

pytest.importorskip("onnxruntime")


@pytest.fixture
def run_cli(monkeypatch):
    # Registered by the lead in COMMANDS; set here too so the tests do not depend on it.
    monkeypatch.setitem(cli_main.COMMANDS, "export", ("edgenas.cli.export", "export", "Export a network."))

    def invoke(*args: str):
        return CliRunner().invoke(cli_main.cli, ["export", *args])

    return invoke


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    return lines[0]


def test_help(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0, result.output
    for text in ("RUN_DIR_OR_MODEL", "--format", "--precision", "--calib", "--dynamic-batch", "--parity-samples",
                 "mobilenet_v3_small"):
        assert text in result.output


def test_run_dir_fp32_int8_json(run_cli, tiny_run):
    out = tiny_run / "exports"
    result = run_cli(str(tiny_run), "--precision", "fp32,int8", "--calib", "16", "--parity-samples", "40", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data == json.loads((out / "manifest.json").read_text())
    assert data["source"]["kind"] == "arch" and data["source"]["weights"] == "preserved"
    assert len(data["source"]["arch_sha256"]) == 64
    fp32 = next(a for a in data["artifacts"] if a["precision"] == "fp32")
    assert fp32["status"] == "ok" and fp32["parity"]["top1_agreement"] >= 0.999
    # the synthetic data has 10 classes, the tiny net 4: parity without accuracy, and a warning says so
    assert fp32["parity"]["n_inputs"] == 40 and "accuracy" not in fp32["parity"]
    assert "parity without accuracy" in result.output
    assert fp32["labels"] == ["a", "b", "c", "d"] and fp32["normalisation"]["std"] == [0.25] * 3
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt", "manifest.json", "model-fp32.onnx",
                                                     "model-int8.onnx"]


def test_baseline_human_output(run_cli, tmp_path):
    out = tmp_path / "mnv3"
    result = run_cli("mobilenet_v3_small", "--out", str(out), "--parity-samples", "8", "--resolution", "32")
    assert result.exit_code == 0, result.output
    assert "random weights" in result.output and "onnx" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert "accuracy" in manifest["artifacts"][0]["parity"]  # 10 classes: the synthetic labels apply
    assert manifest["source"] == {"kind": "baseline", "name": "mobilenet_v3_small", "arch_sha256": None,
                                  "weights": "random", "fine_tuned": None}


@pytest.mark.parametrize("args,match", [
    (["--format", "onnx,coreml"], "unknown format 'coreml'"),
    (["--precision", "fp32,bf16"], "unknown precision 'bf16'"),
    (["--mean", "0.5,0.5,0.5"], "give --mean and --std together"),
    (["--mean", "0.5,0.5", "--std", "1,1"], "need 3 values each"),
])
def test_unknown_names(run_cli, tiny_run, args, match):
    line = _one_line_error(run_cli(str(tiny_run), *args))
    assert match in line
    assert not (tiny_run / "exports").exists()


def test_run_dir_without_arch_json(run_cli, tiny_run):
    (tiny_run / "arch.json").unlink()
    assert "no arch.json" in _one_line_error(run_cli(str(tiny_run)))
    assert not (tiny_run / "exports").exists()


def test_corrupt_weights(run_cli, tiny_run):
    (tiny_run / "weights.pt").write_bytes(b"not a checkpoint")
    assert "cannot load weights" in _one_line_error(run_cli(str(tiny_run)))
    assert not (tiny_run / "exports").exists()


def test_unknown_model_name(run_cli):
    assert "mobilenet_v3_small" in _one_line_error(run_cli("mobilenet_v3_smal"))


def test_failed_artifact_is_one_line_and_successes_stay_listed(run_cli, tiny_run, monkeypatch):
    from exporters.errors import ConversionError
    from exporters.formats.onnx import OnnxExporter

    def broken(*args, **kwargs):
        raise ConversionError("model-fp16: converter says no")

    monkeypatch.setattr(OnnxExporter, "_to_fp16", broken)
    line = _one_line_error(run_cli(str(tiny_run), "--precision", "fp32,fp16", "--parity-samples", "8"))
    assert "onnx/fp16: model-fp16: converter says no" in line and "manifest.json" in line
    manifest = json.loads((tiny_run / "exports" / "manifest.json").read_text())
    assert [(a["precision"], a["status"]) for a in manifest["artifacts"]] == [("fp32", "ok"), ("fp16", "failed")]
    assert sorted(p.name for p in (tiny_run / "exports").iterdir()) == ["labels.txt", "manifest.json",
                                                                        "model-fp32.onnx"]
