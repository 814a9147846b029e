"""benchmarks/finetune_budget.py: which recorded fine-tunings it compares across epoch budgets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "finetune_budget.py"


@pytest.fixture(scope="module")
def budget():
    spec = importlib.util.spec_from_file_location("finetune_budget", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(init, epochs, seed, acc, protocol, **options):
    base = {"data": "imagefolder", "lr": 0.05, "reset_norms": True, "model": "run", "init": init, "fraction": 0.1,
            "samples": None, "seed": seed, "class_subset": None, "epochs": epochs}
    return {"model": "searched", "init": init, "fraction": 0.1, "samples": None, "seed": seed, "epochs": epochs,
            "final_acc": acc, "cpu_s": 6.0 * epochs, "protocol": protocol, "class_subset": None,
            "protocol_options": {**base, **options}}


def test_protocols_that_differ_only_in_epochs_are_compared(budget):
    records = [_record("preserved", 30, 0, 60.0, "p30"), _record("random", 30, 0, 62.0, "p30"),
               _record("preserved", 10, 0, 58.0, "p10"), _record("preserved", 10, 1, 57.0, "p10"),
               _record("random", 10, 0, 55.0, "p10"),
               _record("preserved", 30, 0, 50.0, "lr", lr=0.02),  # another optimiser: not comparable
               {**_record("random", 30, 0, 62.0, "k", reset_norms=False)},
               {**_record("preserved", 30, 0, 1.0, "p30"), "fraction": 0.01}]  # another label budget
    ref, cells = budget.budget_table(records, 0.1, None, "p30")
    assert ref == "p30"
    assert cells[("preserved", 10)]["acc"] == [58.0, 57.0] and cells[("random", 10)]["acc"] == [55.0]
    assert cells[("preserved", 30)]["acc"] == [60.0] and cells[("random", 30)]["cpu_min"] == [3.0]
    assert set(cells) == {("preserved", 10), ("preserved", 30), ("random", 10), ("random", 30)}
    with pytest.raises(SystemExit, match="no fine-tuning"):
        budget.budget_table(records, 0.2, None)
