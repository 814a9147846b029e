"""``edgenas search``: run a strategy end to end, resumable, into a run directory.

Layout of the run directory (docs/architecture.md): ``config.yaml``, ``arch.json``,
``weights.pt`` (preserved weights of the derived network), ``search.ckpt``,
``metrics.jsonl``, ``alpha.jsonl`` or ``evolution.jsonl``, ``summary.json``,
``report.md``, ``plots/``; with ``--refine-epochs`` also ``refine/`` and
``weights_search.pt`` (the weights before the refinement).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Callable

import torch

from bench.files import read_json
from edgenas.accelerator import resolve_device
from edgenas.errors import ConfigError
from edgenas.outputs import job_output
from edgenas.rundir import atomic_torch_save, atomic_write_bytes, atomic_write_text
from edgenas.search.config import SearchConfig
from edgenas.search.loop import SearchResult

__all__ = ["SearchResult", "refine_run", "run_search", "write_config"]


def write_config(cfg: SearchConfig, run_dir: Path) -> None:
    import yaml

    atomic_write_text(run_dir / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def run_search(cfg: SearchConfig, console=None, on_step: Callable[[int], None] | None = None) -> SearchResult:
    """Run (or resume, or report an already finished) search into ``cfg.out``.

    Raises:
        ConfigError, DataError, BudgetError, CheckpointError: bad options or data, an
            impossible budget, or a run directory holding another search.
    """
    if not isinstance(cfg, SearchConfig):
        raise ConfigError("run_search takes a SearchConfig")
    if cfg.refine_epochs and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("--refine-epochs runs in one process: search under torchrun without it, then run "
                          "the same `edgenas search` with --refine-epochs (and the same --out) in one process")
    if cfg.strategy == "proxy" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("the proxy strategy (the default) runs in one process: its ranking takes minutes on one "
                          "CPU; under torchrun use --strategy darts")
    run_dir = Path(cfg.out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--out {run_dir} exists and is not a directory")
    with job_output(run_dir, "search", durable=lambda: (run_dir / "search.ckpt").exists()):
        result = _search(cfg, console, on_step)
        if cfg.refine_epochs:
            result = dataclasses.replace(result, summary=refine_run(cfg, result.run_dir, console))
    return result


def _search(cfg: SearchConfig, console, on_step) -> SearchResult:
    run_dir = Path(cfg.out)
    if cfg.strategy == "evolve":
        from edgenas.evolve.runner import EvolveSearch

        search = EvolveSearch(cfg, console, on_step)
    elif cfg.strategy == "proxy":
        from edgenas.search.proxy import ProxySearch

        search = ProxySearch(cfg, console, on_step)
    else:
        from edgenas.search.darts import DartsSearch

        search = DartsSearch(cfg, console, on_step)
    ckpt = search.load_checkpoint() if (run_dir / "search.ckpt").exists() else None
    if ckpt is not None and ckpt.get("done") and (run_dir / "summary.json").exists():
        from edgenas.space.registry import load_spec

        summary = read_json(run_dir / "summary.json", "search summary")
        spec = load_spec(run_dir)
        return SearchResult(run_dir, spec, summary["params"], summary["macs"], summary["elapsed_s"], True, summary)
    search.prepare()
    world = getattr(search, "world", None)
    if world is None or world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(cfg, run_dir)
    if world is not None:
        world.barrier()
    elapsed, resumed = search.train()
    return search.finish(elapsed, resumed)


def refine_run(cfg: SearchConfig, run_dir: Path, console=None) -> dict[str, Any]:
    """Continue the search's objective on the derived network (``--refine-epochs``) from its preserved weights.

    The derived network's weights as the supernet left them are kept as ``weights_search.pt``;
    ``weights.pt`` becomes the refined weights (what ``--init preserved`` starts from), and
    ``summary.json`` gains a ``refine`` entry. Resumable: ``RUN/refine/`` holds its checkpoint.
    """
    from rich.console import Console

    from edgenas.models import build, load_weights
    from edgenas.space.spec import ArchSpec
    from edgenas.train.ssl_stage import ensure_refined

    console = console or Console(stderr=True)
    write_config(cfg, run_dir)  # with the refinement's options, which the two-stage baseline repeats
    spec = ArchSpec.load(run_dir)
    if not spec.projector:
        raise ConfigError(f"{run_dir}'s network has no SSL projector to refine with")
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    kept = run_dir / "weights_search.pt"
    if not kept.is_file():
        atomic_torch_save(load_weights(run_dir / "weights.pt"), kept)
    net = build(spec)
    net.load_state_dict(load_weights(kept))  # every weight, the projector's included
    net.to(device, memory_format=torch.channels_last)
    refined = ensure_refined(cfg, net, run_dir / "refine", device, arch_sha256=spec.sha256(),
                             progress=cfg.progress, console=console)
    _install(run_dir / "refine" / "weights.pt", run_dir / "weights.pt")
    path = run_dir / "summary.json"
    summary = read_json(path, "search summary")
    summary["refine"] = {k: refined[k] for k in ("epochs", "batch_size", "lr", "rows", "steps", "first_loss",
                                                 "final_loss", "elapsed_s", "cpu_s")}
    atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    from edgenas.report import write_markdown

    write_markdown(run_dir)
    return summary


def _install(src: Path, dst: Path) -> None:
    """Copy ``src`` over ``dst`` atomically, unless it holds the same bytes already (its sha256 is what
    the fine-tunings started from record, so a finished run stays byte-identical when run again)."""
    data = src.read_bytes()
    if not dst.is_file() or dst.read_bytes() != data:
        atomic_write_bytes(dst, data)
