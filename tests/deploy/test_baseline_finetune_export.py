"""A baseline's fine-tuning directory is an export source, with its own weights, classes and normalisation."""

from __future__ import annotations

import json

import pytest

from edgenas.errors import ArchSpecError


def test_a_fine_tuned_baseline_exports_from_its_directory(tmp_path, tiny_finetune_options):
    from edgenas.deploy.export import run_export
    from edgenas.train import FinetuneConfig, run_finetune

    out = tmp_path / "ft"
    options = {**tiny_finetune_options, "epochs": 1, "warmup_epochs": 0}
    result = run_finetune(FinetuneConfig(model="resnet20", init="random", out=str(out), **options)).result
    run_export(str(out), "onnx", "fp32", calib=0, parity_samples=16)
    manifest = json.loads((out / "exports" / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert "resnet20" in text and '"status": "ok"' in text
    entry = next(e for e in manifest["artifacts"] if e["precision"] == "fp32")
    assert entry["normalisation"]["mean"] == pytest.approx(result["mean"])
    assert entry["normalisation"]["std"] == pytest.approx(result["std"])


def test_a_directory_that_is_neither_run_nor_baseline_fine_tuning_is_one_clear_error(tmp_path):
    from edgenas.deploy.source import resolve_source

    (tmp_path / "result.json").write_text(json.dumps({"kind": "searched", "model": "searched"}))
    with pytest.raises(ArchSpecError, match="no arch.json"):
        resolve_source(str(tmp_path))
