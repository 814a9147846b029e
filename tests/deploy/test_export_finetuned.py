"""`edgenas export RUN` exports what the user means: the run's fine-tuning (the only or best one, or the one
``--finetune`` names), says which in one line, and warns when the classifier was never trained."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from edgenas.cli.main import cli

pytest.importorskip("onnxruntime")

EXPORT = ["--format", "onnx", "--precision", "fp32", "--parity-samples", "40"]


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain", "exports"))
    return copy


def _export(*args):
    return CliRunner().invoke(cli, ["export", *map(str, args), *EXPORT, "--json"])


def test_a_run_without_fine_tuning_warns_that_its_classifier_is_untrained(run):
    result = _export(run)
    assert result.exit_code == 0, result.output
    assert "classifier was never trained" in result.stderr and f"edgenas finetune {run}" in result.stderr
    source = json.loads(result.stdout)["source"]
    assert source["weights"] == "preserved" and source["fine_tuned"] is None


def test_the_best_fine_tuning_is_exported_and_recorded(run, tiny_finetune_options):
    from edgenas.train import FinetuneConfig, run_finetune

    accs = {}
    for seed in (0, 1):
        cfg = FinetuneConfig(model=str(run), init="random", seed=seed,
                             out=str(run / "finetune" / f"random-f0.5-s{seed}"), **tiny_finetune_options)
        accs[f"random-f0.5-s{seed}"] = run_finetune(cfg).result["final_acc"]
    (run / "finetune" / "broken").mkdir()  # an unfinished one is not a candidate
    best = max(accs, key=lambda n: (accs[n], n))
    result = _export(run)
    assert result.exit_code == 0, result.output
    assert f"exporting {best}, the best of its 2 fine-tunings" in result.stderr
    assert "never trained" not in result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["source"]["weights"] == "fine-tuned" and manifest["source"]["name"] == str(run)
    assert manifest["source"]["fine_tuned"]["holdout_acc"] == accs[best]
    assert manifest["source"]["fine_tuned"]["dir"] == str(run / "finetune" / best)
    assert (run / "exports" / "manifest.json").is_file()  # the run's exports, not the fine-tuning's
    other = next(n for n in accs if n != best)
    result = _export(run, "--finetune", other, "--out", run / "other")
    assert result.exit_code == 0, result.output
    assert f"exporting the fine-tuning {other}" in result.stderr
    assert json.loads(result.stdout)["source"]["fine_tuned"]["dir"] == str(run / "finetune" / other)


def test_an_unknown_fine_tuning_is_one_line_and_writes_nothing(run, tmp_path):
    result = _export(run, "--finetune", "nope", "--out", tmp_path / "x")
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "no finished fine-tuning 'nope'" in lines[0]
    assert not (tmp_path / "x").exists()
    result = _export("fast_cnn", "--finetune", "x", "--out", tmp_path / "y")
    assert result.exit_code == 2 and "is a baseline" in result.output and not (tmp_path / "y").exists()
