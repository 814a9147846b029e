"""The searched network against the baselines on one device: measured alike, then a section of the run's report.

The section itself is :func:`edgenas.report.comparison.comparison_markdown`.
"""

from __future__ import annotations

from pathlib import Path


__all__ = ["COMPARE_BASELINES", "run_compare", "write_comparison"]

#: the baselines every comparison measures next to the searched network
COMPARE_BASELINES = ("fast_cnn", "resnet20", "mobilenet_v2_035", "mobilenet_v3_small", "efficientnet_b0")

def write_comparison(run: str | Path) -> Path:
    """Rewrite ``run/report.md`` with its device comparison (from ``run/compare/records.jsonl`` and its plots)."""
    from edgenas.report import write_markdown

    return write_markdown(run)


def run_compare(run: str | Path, reach, formats: tuple[str, ...] | None = None,
                precisions: tuple[str, ...] = ("fp32", "int8"), baselines: tuple[str, ...] = COMPARE_BASELINES,
                weights: dict[str, str] | None = None, calib: int = 300, threads: int | None = None,
                batch: int | None = None, bench_options=None, data: str | None = None, data_root: str | None = None,
                samples: int = 1000, progress: bool = True) -> tuple[list[dict], Path]:
    """The Python form of ``edgenas compare``: the run's network and the baselines, exported alike, measured alike.

    Every model is exported at the run's input resolution in ``formats`` (default: the
    format of the device's runtime) and measured on the device with the same settings;
    the records go to ``RUN/compare/`` and a "Device comparison" section into ``RUN/report.md``.

    Returns:
        (the records, the report written).
    """
    from bench.runtimes.base import format_of_runtime
    from devices.profiles import load_profile
    from edgenas.deploy.sweep import SweepPlan, run_sweep
    from edgenas.space.registry import load_spec

    run = Path(run)
    profile = load_profile(reach.device)
    resolution = load_spec(run / "arch.json").resolution  # baselines at the run's input size
    plan = SweepPlan(models=(str(run), *baselines), formats=formats or (format_of_runtime(profile.runtime),),
                     precisions=precisions, resolutions=(resolution,), batches=(batch or 1,),
                     threads=(threads or profile.threads,), weights=dict(weights or {}), calib=calib)
    records, _ = run_sweep(plan, run / "compare", reach, bench_options=bench_options, data=data,
                               data_root=data_root, samples=samples, progress=progress)
    return records, write_comparison(run)
