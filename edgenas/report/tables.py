"""The tables of a run's report, from the files of its run directory (pure functions over records).

A table is data (:class:`Table`): a title, column names, rows of cells and a
note; :mod:`edgenas.report.formats` writes it as Markdown, LaTeX, CSV or JSON.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.files import read_json
from edgenas.rundir import read_jsonl

__all__ = ["RunRecords", "Table", "accuracy_table", "ablation_table", "aggregate", "architecture_table",
           "budget_key", "budget_label", "compute_table", "fewshot_table", "load_records", "mean_std"]


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    note: str = ""


@dataclass
class RunRecords:
    """Everything a report reads from ``RUN/``."""

    run: Path
    summary: dict[str, Any]
    spec: Any
    results: list[dict]
    fewshot: list[dict]
    compare: list[dict]
    protocol: str | None
    protocols: list[str] = field(default_factory=list)
    compare_failed: list[dict] = field(default_factory=list)


def load_records(run: str | Path, protocol: str | None = None) -> RunRecords:
    """Read the run's summary, evaluation records (of one protocol: the latest unless named) and comparison.

    Raises:
        ArchSpecError: no or malformed ``arch.json``.
        ConfigError: ``protocol`` names no recorded protocol.
    """
    from edgenas.errors import ConfigError
    from edgenas.space.registry import load_spec

    run = Path(run)
    spec = load_spec(run)
    summary = read_json(run / "summary.json", "search summary") if (run / "summary.json").is_file() else {}
    results = read_jsonl(run / "eval" / "results.jsonl")
    fewshot = read_jsonl(run / "eval" / "fewshot.jsonl")
    protocols = list(dict.fromkeys(r.get("protocol") for r in results + fewshot if r.get("protocol")))
    if protocol is not None and protocol not in protocols:
        raise ConfigError(f"no evaluation with protocol {protocol!r} in {run} (recorded: {', '.join(protocols) or 'none'})")
    chosen = protocol or (results[-1]["protocol"] if results else fewshot[-1]["protocol"] if fewshot else None)
    compare = read_jsonl(run / "compare" / "records.jsonl")
    return RunRecords(run, summary, spec, [r for r in results if r.get("protocol") == chosen],
                      [r for r in fewshot if r.get("protocol") == chosen], [r for r in compare if "error" not in r],
                      chosen, protocols, [r for r in compare if "error" in r])


def mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def budget_key(r: dict) -> tuple[int, float]:
    """Sort key of a label budget: fractions first, then counts, each ascending."""
    return (0, float(r["fraction"])) if r.get("fraction") is not None else (1, float(r["samples"]))


def budget_label(key: tuple[int, float]) -> str:
    return f"{100 * key[1]:g}% labels" if key[0] == 0 else f"{int(key[1])} labels"


def model_label(model: str, init: str, kind: str | None = None) -> str:
    return f"searched ({init})" if (kind or ("searched" if model == "searched" else "")) == "searched" else model


def aggregate(results: list[dict], value: str = "final_acc") -> dict[tuple[str, str], dict[tuple, dict]]:
    """``{(model, init): {budget key: {"mean", "std", "n", "cpu_min", "seeds"}}}`` over seeds."""
    cells: dict[tuple[str, str], dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in results:
        cells[(r["model"], r["init"])][budget_key(r)].append(r)
    out: dict[tuple[str, str], dict[tuple, dict]] = {}
    for who, budgets in cells.items():
        out[who] = {}
        for key, rs in budgets.items():
            mean, std = mean_std([r[value] for r in rs])
            out[who][key] = {"mean": mean, "std": std, "n": len(rs), "seeds": sorted(r["seed"] for r in rs),
                             "cpu_min": float(np.mean([r["cpu_s"] for r in rs])) / 60,
                             "params": rs[0]["params"], "macs": rs[0]["macs"]}
    return out


def _order(who: tuple[str, str]) -> tuple[int, str, int]:
    model, init = who
    inits = ("preserved", "pretrained", "random")
    return (0 if model == "searched" else 1, model, inits.index(init) if init in inits else 9)


def _cell(stats: dict | None) -> str:
    if stats is None:
        return "-"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f}" if stats["n"] > 1 else f"{stats['mean']:.2f}"


def _budgets(agg: dict) -> list[tuple]:
    return sorted({k for cells in agg.values() for k in cells})


def accuracy_table(results: list[dict]) -> Table | None:
    """Top-1 accuracy (%) on the hold-out, mean ± std over seeds, per model and label budget."""
    if not results:
        return None
    agg = aggregate(results)
    budgets = _budgets(agg)
    rows = [[model_label(*who), *(_cell(agg[who].get(b)) for b in budgets)] for who in sorted(agg, key=_order)]
    seeds = sorted({r["seed"] for r in results})
    r0 = results[0]
    note = (f"Top-1 accuracy (%) of the last epoch on {r0['n_eval']:,} held-out images that no training or model "
            f"selection saw; mean ± std over seeds {seeds}. Every model: the same {r0['epochs']} epochs, "
            f"augmentation, optimiser, schedule and labelled images ({r0['data']}, {r0['resolution']} px).")
    return Table("accuracy", "Accuracy with few labels", ["model", *map(budget_label, budgets)], rows, note)


def compute_table(results: list[dict]) -> Table | None:
    """CPU minutes per fine-tuning (mean over seeds): the compute budget of every accuracy figure."""
    if not results:
        return None
    agg = aggregate(results)
    budgets = _budgets(agg)
    rows = [[model_label(*who), *(f"{agg[who][b]['cpu_min']:.1f}" if b in agg[who] else "-" for b in budgets)]
            for who in sorted(agg, key=_order)]
    devices = sorted({f"{r['device']}, {r['threads']} thread(s)" for r in results})
    return Table("compute", "Compute budget (CPU minutes per fine-tuning)", ["model", *map(budget_label, budgets)],
                 rows, f"Process CPU time of each fine-tuning ({'; '.join(devices)}), evaluation included.")


def ablation_table(results: list[dict], pretrain: dict | None = None, refine: dict | None = None) -> Table | None:
    """The searched network's initialisations side by side (weight preservation vs random vs two-stage).

    ``refine``: the run's refinement (``summary.json``), which both trained starts went through.
    """
    searched = [r for r in results if r["model"] == "searched"]
    if len({r["init"] for r in searched}) < 2:
        return None
    agg = aggregate(searched)
    budgets = _budgets(agg)
    names = {"preserved": "preserved (weights of the search)", "random": "random (from scratch)",
             "pretrained": "two-stage (SSL pre-training of the derived net, search budget)"}
    if refine:
        names["preserved"] = f"preserved (weights of the search, refined {refine['epochs']} epochs)"
        names["pretrained"] = "two-stage (SSL pre-training of the derived net, search budget + the same refinement)"
    rows = [[names.get(init, init), *(_cell(agg[(m, init)].get(b)) for b in budgets)]
            for m, init in sorted(agg, key=_order)]
    note = "Same architecture, data, labels and fine-tuning; only the initial weights differ."
    if refine:
        note += (f" The refinement: {refine['steps']} SSL steps on {refine['rows']:,} unlabelled images "
                 f"({refine['cpu_s'] / 60:.1f} CPU minutes).")
    if pretrain:
        note += (f" The two-stage pre-training took {pretrain['steps']} SSL steps "
                 f"({pretrain['cpu_s'] / 60:.1f} CPU minutes) before fine-tuning.")
    return Table("ablation", "Weight-preservation ablation", ["initialisation", *map(budget_label, budgets)], rows,
                 note)


def fewshot_table(fewshot: list[dict]) -> Table | None:
    """Few-shot accuracy (%) with its 95% confidence interval, per backbone and N-way K-shot setting."""
    if not fewshot:
        return None
    settings = sorted({(r["n_way"], r["k_shot"]) for r in fewshot})
    by: dict[tuple, dict] = defaultdict(dict)
    for r in fewshot:
        by[(r["model"], r["init"], r["labels_used"])][(r["n_way"], r["k_shot"])] = r
    rows = []
    for (model, init, used), cells in sorted(by.items(), key=lambda kv: (_order(kv[0][:2]), kv[0][2])):
        rows.append([model_label(model, init), used,
                     *(f"{cells[s]['acc']:.2f} ± {cells[s]['ci95']:.2f}" if s in cells else "-" for s in settings)])
    r0 = fewshot[0]
    note = (f"{r0['method']} classifier on penultimate features, {r0['episodes']} episodes of {r0['n_query']} "
            f"queries per class, on the novel classes {r0['novel_classes']} (held-out images); "
            "± is the 95% confidence interval.")
    return Table("fewshot", "Few-shot episodes", ["backbone", "labels used", *(f"{n}-way {k}-shot" for n, k in settings)],
                 rows, note)


def _latency(compare: list[dict]) -> dict[str, dict]:
    """model -> its FP32 measurement of the comparison (else its first)."""
    out: dict[str, dict] = {}
    for r in compare:
        model = str(r.get("model"))
        if model not in out or (r.get("precision") == "fp32" and out[model].get("precision") != "fp32"):
            out[model] = r
    return out


def architecture_table(records: RunRecords) -> Table:
    """Params, MACs and latency (measured where the bench has it) of the searched net and the baselines."""
    summary, spec = records.summary, records.spec
    latency = _latency(records.compare)
    models: dict[str, tuple[int, int]] = {}
    for r in records.results:
        models.setdefault(r["model"], (r["params"], r["macs"]))
    if "searched" not in models and summary:
        models["searched"] = (summary.get("params", 0), summary.get("macs", 0))
    rows = []
    for model, (params, macs) in sorted(models.items(), key=lambda kv: (kv[0] != "searched", kv[0])):
        m = latency.get(model) or (latency.get(records.run.name) if model == "searched" else None)
        lat = f"{m['p50_ms']:.3f} ({m['format']}/{m['precision']}, {m['threads']} thr)" if m else "-"
        predicted = "-"
        if model == "searched" and summary.get("predicted_latency_ms") is not None:
            predicted = f"{summary['predicted_latency_ms']:.3f}"
        rows.append([model, f"{params:,}", f"{macs / 1e6:.2f}M", predicted, lat])
    devices = sorted({str(r.get("device") or (r.get("fingerprint") or {}).get("cpu")) for r in records.compare})
    note = (f"At {spec.resolution} px. Latency: p50 ms measured by `edgenas compare`"
            f"{' on ' + ', '.join(devices) if devices else ' (not run yet)'}; predicted by the search's latency "
            "table where it had one.")
    return Table("architecture", "Networks", ["model", "params", "MACs", "predicted ms", "measured p50 ms"], rows,
                 note)


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
