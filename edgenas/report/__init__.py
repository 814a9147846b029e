"""``edgenas report``: a run's tables (Markdown, LaTeX, CSV, JSON) and plots, from its run directory.

``write_reports(run, ("md", "latex", "csv", "json"))`` reads ``summary.json``,
``arch.json``, ``alpha.jsonl``, ``eval/results.jsonl``, ``eval/fewshot.jsonl``,
``pretrain/summary.json`` and ``compare/records.jsonl`` and writes
``report.md``, ``report/report.tex``, ``report/<table>.csv``,
``report/report.json`` and ``plots/*.png``. Nothing is recomputed: the report
shows what the run's commands measured.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.files import read_json
from edgenas.errors import ConfigError
from edgenas.report.formats import FORMATS, to_csv, to_json, to_latex, to_markdown
from edgenas.report.tables import (
    Table,
    ablation_table,
    accuracy_table,
    architecture_table,
    compute_table,
    fewshot_table,
    load_records,
)
from edgenas.rundir import atomic_write_text

__all__ = ["FORMATS", "build_tables", "write_markdown", "write_reports"]


def build_tables(run: str | Path, protocol: str | None = None) -> tuple[object, list[Table]]:
    """(the run's records, its tables in report order)."""
    records = load_records(run, protocol)
    pretrain_path = records.run / "pretrain" / "summary.json"
    pretrain = read_json(pretrain_path, "pre-training summary") if pretrain_path.is_file() else None
    refine = records.summary.get("refine")
    tables = [architecture_table(records), accuracy_table(records.results),
              ablation_table(records.results, pretrain, refine), fewshot_table(records.fewshot),
              compute_table(records.results)]
    return records, [t for t in tables if t is not None]


def _markdown(records, tables: list[Table], plots: list[Path]) -> str:
    from edgenas.report.comparison import BEGIN, END, comparison_markdown
    from edgenas.search.report import search_section

    run = records.run
    lines = [f"# Report: {run.name}", ""]
    if records.summary.get("strategy") == "evolve":
        from edgenas.evolve.report import evolution_section

        lines += ["## Search", "", *evolution_section(run, records.spec, records.summary)]
    elif records.summary:
        lines += ["## Search", "", *search_section(records.spec, records.summary)]
    if records.protocol:
        options = next((r.get("protocol_options") for r in records.results if r.get("protocol_options")), {})
        lines += [f"## Evaluation (protocol `{records.protocol}`)", ""]
        if options:
            keys = ("data", "epochs", "batch_size", "lr", "warmup_epochs", "weight_decay", "label_smoothing",
                    "select_fraction", "augment", "linear_probe")
            # reset_norms is absent from protocols recorded before it existed: they kept the norms
            keys_and_values = [(k, options.get(k)) for k in keys] + [("reset_norms", options.get("reset_norms", False))]
            if options.get("probe_epochs"):
                keys_and_values.append(("probe_epochs", options["probe_epochs"]))
            lines += ["Fine-tuning protocol: " + ", ".join(f"{k}={v}" for k, v in keys_and_values) + ".", ""]
        if len(records.protocols) > 1:
            lines += [f"Other recorded protocols: {', '.join(p for p in records.protocols if p != records.protocol)} "
                      "(`edgenas report --protocol ID`).", ""]
    lines += [to_markdown(t, 3 if records.protocol and t.name != "architecture" else 2) for t in tables]
    if plots:
        lines += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    report = run / "report.md"
    old = report.read_text() if report.is_file() else ""
    section = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), old, re.S)
    if records.compare or records.compare_failed:
        device = ", ".join(sorted({str(r.get("device")) for r in records.compare + records.compare_failed}))
        plots = run / "compare" / "plots"
        plot = next((p for p in (plots / "accuracy_vs_latency.png", plots / "latency_vs_macs.png") if p.is_file()),
                    None)
        lines.append(comparison_markdown(records.compare + records.compare_failed, device,
                                         plot.relative_to(run).as_posix() if plot else None))
    elif section:
        lines.append(section.group(0) + "\n")
    return "\n".join(lines)


_PREAMBLE = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[margin=2cm]{geometry}\n\\begin{document}\n"


def write_markdown(run: str | Path) -> Path:
    """(Re)write the run's ``report.md`` and its plots from what its commands recorded: the one writer of it.

    The search, its refinement, ``compare`` and ``report`` all call this, so the file
    always holds every section the run has (search, evaluation, device comparison).
    """
    (path,) = write_reports(run, ("md",))
    return path


def write_reports(run: str | Path, formats: tuple[str, ...] = FORMATS, protocol: str | None = None) -> list[Path]:
    """Write the run's report in ``formats``; returns the files written.

    Raises:
        ConfigError: an unknown format, or a protocol id the run has not recorded.
        ArchSpecError: ``run`` has no (valid) ``arch.json``.
    """
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"unknown report format {bad[0] if bad else '(none)'!r} (known: {', '.join(FORMATS)})")
    from edgenas.outputs import job_output

    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"{run} is not a run directory")
    with job_output(run, "report", durable=lambda: True):  # a report never removes what the run holds
        return _write_reports(run, formats, protocol)


def _write_reports(run: Path, formats: tuple[str, ...], protocol: str | None) -> list[Path]:
    from edgenas.report.plots import write_plots
    from edgenas.search.report import write_plots as search_plots

    records, tables = build_tables(run, protocol)
    out = run / "report"
    written: list[Path] = []
    plots = (search_plots(run) + write_plots(records)) if "md" in formats else []
    if "md" in formats and records.summary.get("strategy") == "evolve":
        from edgenas.evolve.report import write_evolution_plot

        plots += [p for p in [write_evolution_plot(run)] if p is not None]
    if "md" in formats:
        written.append(atomic_write_text(run / "report.md", _markdown(records, tables, plots)))
    if {"latex", "csv", "json"} & set(formats):
        out.mkdir(exist_ok=True)
    if "latex" in formats:
        body = "\n".join(to_latex(t) for t in tables)
        written.append(atomic_write_text(out / "report.tex", _PREAMBLE + body + "\\end{document}\n"))
    if "csv" in formats:
        written += [atomic_write_text(out / f"{t.name}.csv", to_csv(t)) for t in tables]
    if "json" in formats:
        written.append(atomic_write_text(out / "report.json", to_json(
            tables, run=str(run), protocol=records.protocol, summary=records.summary,
            results=records.results, fewshot=records.fewshot)))
    return written
