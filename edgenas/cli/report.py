"""``edgenas report``: a run's tables and plots from what its commands recorded."""

from __future__ import annotations

import click

from edgenas.cli.params import CommaList


@click.command(context_settings={"show_default": True})
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--format", "formats", default="md,latex,csv,json", type=CommaList(str, "formats", allow_empty=True),
              help="Any of md (RUN/report.md), latex (report/report.tex), csv (report/<table>.csv), json.")
@click.option("--protocol", default=None, help="Evaluation protocol id to report [default: the latest].")
def report(run_dir, formats, protocol) -> None:
    """Write the run's report: architecture, params, MACs, latency, accuracy per label budget,
    few-shot with 95% intervals, baselines, weight-preservation ablation, compute, and PNG plots."""
    from pathlib import Path

    from edgenas.errors import ConfigError
    from edgenas.report import write_reports

    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir} is not a run directory")
    for path in write_reports(run_dir, formats, protocol):
        click.echo(str(path))
