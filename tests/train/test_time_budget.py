"""`edgenas finetune --time-budget`: epochs planned from steps timed here, kept on resume, and refused when
not even one epoch fits. Whether a plan fits its minutes is measured in docs/evaluation.md, not here."""

from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner

from edgenas.cli.main import cli
from edgenas.errors import ConfigError
from edgenas.train import FinetuneConfig
from edgenas.train.budget import plan_time_budget

TINY = ["--synthetic-size", "240", "--fraction", "0.5", "--batch-size", "16", "--eval-samples", "100", "--threads",
        "1", "--no-progress", "--checkpoint-every", "2"]


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain"))
    return copy


def finetune(*args):
    return CliRunner().invoke(cli, ["finetune", *map(str, args), *TINY])


def test_the_plan_fills_the_budget_with_epochs_and_a_resume_keeps_it(run, tiny_finetune_options):
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "ft"), **tiny_finetune_options)
    small, line = plan_time_budget(cfg, 0.05)
    large, _ = plan_time_budget(cfg, 0.5)
    assert small.min_steps == 0 and 1 <= small.epochs < large.epochs  # ten times the minutes, more epochs
    assert "--time-budget 0.05 min:" in line and "ms a step here" in line
    result = finetune(run, "--time-budget", "0.05", "--no-unlabelled", "--out", run / "tb")
    assert result.exit_code == 0, result.output
    planned = yaml.safe_load((run / "tb" / "config.yaml").read_text())["epochs"]
    assert f"{planned} epochs of" in result.stderr
    again = finetune(run, "--time-budget", "0.05", "--no-unlabelled", "--out", run / "tb")
    assert again.exit_code == 0 and f"begun with {planned} epochs; resuming that plan" in again.stderr


def test_self_training_plans_two_stages(run, tiny_finetune_options):
    cfg = FinetuneConfig(model=str(run), init="random", out=str(run / "ft"), **tiny_finetune_options)
    alone, _ = plan_time_budget(cfg, 0.5)
    both, line = plan_time_budget(cfg.replace(unlabelled=True), 0.5)
    assert "(teacher and student)" in line and both.epochs < alone.epochs
    short, line = plan_time_budget(cfg.replace(unlabelled=True, epochs=30, teacher_epochs=10), 0.5)
    assert short.teacher_epochs == max(1, round(short.epochs / 3))  # (each plan is timed anew: no epoch order)
    assert f"{short.epochs} epochs of" in line and f"for the student, {short.teacher_epochs} for the teacher" in line
    three, line = plan_time_budget(cfg.replace(unlabelled=True, rounds=3), 0.5)
    assert "(teacher and each of 3 students)" in line and three.epochs < both.epochs  # four trainings, not two


def test_a_time_budget_trains_one_student_unless_told_otherwise(run):
    result = finetune(run, "--time-budget", "0.1", "--out", run / "one")
    assert result.exit_code == 0, result.output
    assert "(teacher and student)" in result.stderr
    assert yaml.safe_load((run / "one" / "config.yaml").read_text())["rounds"] == 1
    result = finetune(run, "--time-budget", "0.1", "--rounds", "2", "--out", run / "two")
    assert result.exit_code == 0, result.output
    assert "(teacher and each of 2 students)" in result.stderr and (run / "two" / "round1" / "weights.pt").is_file()


def test_bad_time_budgets_are_one_line_and_write_nothing(run):
    for args, needle in (([ "--time-budget", "0.0001"], "too small for one epoch here"),
                         (["--time-budget", "1", "--epochs", "5"], "give it or --epochs, not both"),
                         (["--time-budget", "0"], "0")):
        result = finetune(run, *args, "--out", run / "bad")
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.startswith(("error:", "Error:"))]
        assert len(lines) == 1 and needle in lines[0], (args, result.output)
        assert not (run / "bad").exists()
    with pytest.raises(ConfigError, match="minutes > 0"):
        plan_time_budget(FinetuneConfig(model=str(run), out=str(run / "x")), float("nan"))
