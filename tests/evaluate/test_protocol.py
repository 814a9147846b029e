"""`edgenas evaluate` and `edgenas report` on the tiny run: the grid, resume, few-shot, every report format."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from edgenas.cli.main import cli
from edgenas.errors import ConfigError
from edgenas.evaluate import EvalPlan, run_evaluation
from edgenas.report import write_reports
from edgenas.train import FinetuneConfig


@pytest.fixture
def run(tiny_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain"))
    return copy


def _protocol(options, **change):
    options = {**options, "epochs": 1, "warmup_epochs": 0, **change}
    options.pop("fraction")
    return FinetuneConfig(model="-", fraction=0.1, **options)


PLAN = EvalPlan(models=("searched", "mobilenet_v3_small"), inits=("preserved", "random"), fractions=(0.2, 0.5),
                samples=(40,), seeds=(0, 1), few_shot=("5w1s", "5w5s"), episodes=40, queries=5)


@pytest.fixture(scope="module")
def evaluated_once(tiny_run, tiny_finetune_options, tmp_path_factory):
    """The tiny run evaluated on PLAN once for the module (about 20 s)."""
    run = tmp_path_factory.mktemp("evaluated") / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("eval", "finetune", "pretrain"))
    return run, run_evaluation(run, PLAN, _protocol(tiny_finetune_options))


@pytest.fixture
def evaluated(evaluated_once, tmp_path):
    """A private copy of the evaluated run (tests write into it)."""
    run, out = evaluated_once
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, out


def test_grid_records_and_resume(evaluated, tiny_finetune_options):
    run, out = evaluated
    jobs = {r["job"] for r in out["results"]}
    # (2 inits of the searched net + 1 baseline) x 3 label budgets x 2 seeds
    assert len(out["results"]) == len(jobs) == 18
    assert {r["model"] for r in out["results"]} == {"searched", "mobilenet_v3_small"}
    assert {(r["fraction"], r["samples"]) for r in out["results"]} == {(0.2, None), (0.5, None), (None, 40)}
    assert len({r["protocol"] for r in out["results"]}) == 1
    # few-shot: SSL-only features + a base-class backbone per (model, init), per seed, per setting
    assert len(out["fewshot"]) == 2 * (1 + 3) * 2
    r = out["fewshot"][0]
    assert r["novel_classes"] == [5, 6, 7, 8, 9] and r["episodes"] == 40 and 0 <= r["acc"] <= 100
    assert {x["labels_used"] for x in out["fewshot"]} >= {"none (self-supervised only)"}
    lines = (run / "eval" / "results.jsonl").read_text().splitlines()
    again = run_evaluation(run, PLAN, _protocol(tiny_finetune_options))  # everything done: nothing trained
    assert (run / "eval" / "results.jsonl").read_text().splitlines() == lines
    assert len(again["fewshot"]) == len(out["fewshot"])


def test_a_new_protocol_is_recorded_beside_the_old(evaluated, tiny_finetune_options):
    run, out = evaluated
    plan = EvalPlan(models=("searched",), fractions=(0.5,), seeds=(0,), few_shot=())
    other = run_evaluation(run, plan, _protocol(tiny_finetune_options, lr=0.02))
    assert len(other["results"]) == 1 and other["results"][0]["protocol"] != out["results"][0]["protocol"]


def test_cells_of_weights_the_run_no_longer_holds_are_redone(evaluated, tiny_finetune_options, tiny_search_options):
    from edgenas.search.config import SearchConfig
    from edgenas.search.runner import run_search

    run, out = evaluated
    before = {r["job"]: r for r in out["results"]}
    assert all(r["init_sha256"] for r in out["results"] if r["init"] == "preserved")
    run_search(SearchConfig(**tiny_search_options, out=str(run), refine_epochs=1, refine_batch_size=16))
    again = run_evaluation(run, PLAN, _protocol(tiny_finetune_options))
    after = {r["job"]: r for r in again["results"]}
    assert after.keys() == before.keys()
    for job, r in after.items():
        if r["model"] == "searched" and r["init"] == "preserved":
            assert r["init_sha256"] != before[job]["init_sha256"]
            assert list((run / "eval" / r["protocol"] / "jobs").glob(f"{job}.stale-*"))
        else:
            assert r == before[job]  # random starts and baselines are kept
    assert len(again["fewshot"]) == len(out["fewshot"])
    from exporters.manifest import sha256_of

    now = sha256_of(run / "weights.pt")
    searched = [r for r in again["fewshot"] if r["model"] == "searched" and r["init"] == "preserved"]
    assert searched and all(r["init_sha256"] == now for r in searched)  # SSL-only and base-tuned, redone


def test_random_starts_are_reused_by_a_protocol_that_differs_only_in_the_norm_reset(evaluated, tiny_finetune_options):
    run, out = evaluated
    plan = EvalPlan(models=("searched", "mobilenet_v3_small"), inits=("preserved", "random"), fractions=(0.5,),
                    seeds=(0,), few_shot=("5w1s",), episodes=40, queries=5)
    kept = run_evaluation(run, plan, _protocol(tiny_finetune_options, reset_norms=False))
    old = {(r["job"]): r for r in out["results"]}
    assert len(kept["results"]) == 3 and len({r["protocol"] for r in kept["results"]}) == 1  # the plan's cells only
    assert kept["results"][0]["protocol"] != out["results"][0]["protocol"]
    for r in kept["results"]:
        if r["init"] == "random":  # the searched net from scratch and the baseline: the same fine-tuning
            assert r["reused_from"] == old[r["job"]]["protocol"] and r["final_acc"] == old[r["job"]]["final_acc"]
        else:
            assert "reused_from" not in r and r["reset_norms"] is False
    assert len(kept["fewshot"]) == 4  # SSL-only, preserved, random and the baseline, 5-way 1-shot
    assert all(("reused_from" in r) == (r["init"] == "random") for r in kept["fewshot"])


def test_report_in_every_format(evaluated):
    run, out = evaluated
    written = write_reports(run)
    names = {p.name for p in written}
    assert {"report.md", "report.tex", "report.json", "accuracy.csv", "ablation.csv", "fewshot.csv",
            "compute.csv", "architecture.csv"} <= names
    md = (run / "report.md").read_text()
    for text in ("## Search", "Accuracy with few labels", "searched (preserved)", "searched (random)",
                 "mobilenet_v3_small", "Few-shot episodes", "Weight-preservation ablation", "95% confidence",
                 "CPU minutes", "20% labels", "40 labels", "±"):
        assert text in md, text
    for plot in ("data_efficiency.png", "pareto.png", "alpha_evolution.png", "finetune.png", "alpha.png"):
        assert (run / "plots" / plot).is_file(), plot
        assert f"plots/{plot}" in md
    tex = (run / "report" / "report.tex").read_text()
    assert tex.count(r"\begin{tabular}") == 5 and r"$\pm$" in tex and r"\%" in tex
    csv_rows = (run / "report" / "accuracy.csv").read_text().splitlines()
    assert csv_rows[0] == "model,20% labels,50% labels,40 labels" and len(csv_rows) == 4
    data = json.loads((run / "report" / "report.json").read_text())
    assert [t["name"] for t in data["tables"]] == ["architecture", "accuracy", "ablation", "fewshot", "compute"]
    assert len(data["results"]) == 18


def test_report_keeps_the_device_comparison(evaluated):
    from edgenas.report.comparison import BEGIN, END

    run, _ = evaluated
    (run / "report.md").write_text(f"# old\n\n{BEGIN}\n## Device comparison (local)\nkept\n{END}\n")
    write_reports(run, ("md",))
    md = (run / "report.md").read_text()
    assert "## Device comparison (local)\nkept" in md and "# old" not in md


def test_plan_and_report_bad_input(run, tiny_finetune_options):
    with pytest.raises(ConfigError, match=r"--fractions must lie in \(0, 1\]"):
        EvalPlan(fractions=(0.0,))
    with pytest.raises(ConfigError, match="unknown --inits"):
        EvalPlan(inits=("imagenet",))
    with pytest.raises(ConfigError, match="need 5 novel classes"):
        run_evaluation(run, EvalPlan(models=("searched",), fractions=(0.5,), novel_classes=(8, 9)),
                       _protocol(tiny_finetune_options))
    with pytest.raises(ConfigError, match="need 215 images per class; a novel class has"):
        run_evaluation(run, EvalPlan(models=("searched",), fractions=(0.5,), few_shot=("5w200s",)),
                       _protocol(tiny_finetune_options))
    assert not (run / "eval").exists()  # refused before any fine-tuning
    with pytest.raises(ConfigError, match="more than the 240 training images"):
        run_evaluation(run, EvalPlan(models=("searched",), fractions=(), samples=(500,), few_shot=()),
                       _protocol(tiny_finetune_options))
    with pytest.raises(ConfigError, match="unknown report format"):
        write_reports(run, ("docx",))


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_evaluate_report_and_one_line_errors(run):
    tiny = ["--synthetic-size", 240, "--epochs", 1, "--min-steps", 0, "--warmup-epochs", 0, "--eval-samples", 60, "--batch-size", 16,
            "--threads", 1, "--no-progress"]
    result = _cli("evaluate", run, "--models", "searched", "--fractions", "0.5", "--episodes", 20, "--queries", 5,
                  "--few-shot", "5w1s", *tiny)
    assert result.exit_code == 0, result.output
    assert "| searched (preserved) |" in result.output
    result = _cli("report", run, "--format", "md,csv")
    assert result.exit_code == 0 and "report.md" in result.output
    for args, message in [
        (("evaluate", run, "--fractions", "1.5", *tiny), "--fractions must lie in (0, 1]"),
        (("evaluate", run, "--few-shot", "7w30s", "--models", "searched", "--fractions", "0.5", *tiny),
         "7-way episodes need 7 novel classes"),
        (("evaluate", run.parent / "nothing", *tiny), "no arch.json"),
        (("finetune", run, "--fraction", "0", *tiny), "--fraction must be in (0, 1]"),
        (("report", run, "--protocol", "deadbeef"), "no evaluation with protocol 'deadbeef'"),
    ]:
        result = _cli(*args)
        assert result.exit_code == 2, (args, result.output)
        lines = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], result.output
