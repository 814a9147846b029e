"""``edgenas ablate``: the evolution method with one component switched off at a time, under the same budget.

Variants of one evolve config (only components the config turns on are
switched off): ``full``, ``no-evolution`` (the seed network trained alone),
``no-sparse-routing``, ``no-curriculum``, ``no-rotation``. Each is a search run
directory ``OUT/<variant>/`` (resumable), trained for the same epochs on the
same data. Each network is then judged the same way: weighted kNN accuracy of
its self-supervised features (:func:`edgenas.evaluate.knn.knn_accuracy`, the
labelled share of the pool as memory, the fixed hold-out as queries) and,
with ``finetune_epochs > 0``, the accuracy after fine-tuning on that share of
labels (the evaluation protocol). ``OUT/ablation.jsonl`` holds one record per
variant; ``OUT/ablation.md`` and ``.csv`` the table.
"""

from __future__ import annotations

from pathlib import Path

import torch

from edgenas.errors import ConfigError
from edgenas.rundir import append_jsonl, atomic_write_text, read_jsonl
from edgenas.search.config import SearchConfig

__all__ = ["COMPONENTS", "ablation_variants", "run_ablation"]

#: component -> (is it on in cfg, cfg with it off)
COMPONENTS = {
    "evolution": (lambda c: c.evolution, lambda c: c.replace(evolution=False)),
    "sparse_routing": (lambda c: c.sparse_routing, lambda c: c.replace(sparse_routing=False)),
    "curriculum": (lambda c: c.curriculum, lambda c: c.replace(curriculum=False)),
    "rotation": (lambda c: "rotation" in c.ssl_parts,
                 lambda c: c.replace(ssl="+".join(p for p in c.ssl_parts if p != "rotation"),
                                     ssl_weights=tuple(kv for kv in c.ssl_weights if kv[0] != "rotation"))),
}


def ablation_variants(cfg: SearchConfig, components: tuple[str, ...] = tuple(COMPONENTS)) -> dict[str, SearchConfig]:
    """``{"full": cfg, "no-<component>": cfg without it, ...}`` for the components ``cfg`` uses.

    Raises:
        ConfigError: not an evolve config, or an unknown component.
    """
    if cfg.strategy != "evolve":
        raise ConfigError("edgenas ablate takes an evolve config (strategy: evolve)")
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ConfigError(f"unknown component {unknown[0]!r} (known: {', '.join(COMPONENTS)})")
    variants = {"full": cfg}
    for name in components:
        on, off = COMPONENTS[name]
        if on(cfg):
            variants[f"no-{name.replace('_', '-')}"] = off(cfg)
    return variants


@torch.no_grad()
def _knn(run: Path, data, fraction: float, seed: int, device) -> float:
    from edgenas.data.splits import stratified_fraction
    from edgenas.evaluate.knn import knn_accuracy
    from edgenas.evaluate.protocol import features_of
    from edgenas.train.candidates import load_candidate

    net = load_candidate(str(run), "preserved", len(data.pool.classes), data.pool.resolution, seed).model
    bank = stratified_fraction(data.pool.labels, fraction, seed)
    train = features_of(net, data.pool.images[bank], data.mean, data.std, device)
    test = features_of(net, data.holdout.images, data.mean, data.std, device)
    return knn_accuracy(train, data.pool.labels[bank], test, data.holdout.labels, k=min(20, len(bank)))


def run_ablation(cfg: SearchConfig, out: str | Path, components: tuple[str, ...] = tuple(COMPONENTS),
                 eval_data: str | None = None, eval_root: str | None = None, fraction: float = 0.1,
                 finetune_epochs: int = 0, seed: int = 0, console=None) -> list[dict]:
    """Search every variant (or resume it), evaluate the ones not yet recorded; returns the records.

    Args:
        eval_data, eval_root: labelled data for the evaluation (default: the config's data; for a
            synthetic config its hardest level).
        fraction: labelled share of the pool (kNN memory and fine-tuning labels).
        finetune_epochs: fine-tuning epochs of the evaluation protocol (0: kNN only).
    """
    from rich.console import Console

    from edgenas.accelerator import resolve_device
    from edgenas.search.runner import run_search
    from edgenas.train import FinetuneConfig, run_finetune
    from edgenas.train.data import load_protocol_data

    console = console or Console(stderr=True)
    out = Path(out)
    from edgenas.outputs import job_output

    def durable() -> bool:
        return (out / "ablation.jsonl").exists() or any(out.glob("*/search.ckpt"))

    with job_output(out, "ablation", durable=durable):
        variants = ablation_variants(cfg, components)
        eval_data = eval_data or cfg.data
        eval_root = eval_root if eval_root is not None else (cfg.data_root if eval_data == cfg.data else None)
        level = 4 if eval_data == "synthetic" else 1
        settings = {"eval_data": eval_data, "fraction": fraction, "finetune_epochs": finetune_epochs, "seed": seed}
        done = {r["variant"] for r in read_jsonl(out / "ablation.jsonl") if r.get("settings") == settings}
        data = None
        for name, variant in variants.items():
            run = out / name
            console.print(f"ablation: {name}")
            result = run_search(variant.replace(out=str(run)), console)
            if name in done:
                continue
            if data is None:
                data = load_protocol_data(eval_data, eval_root, cfg.resolution, level)
            device = resolve_device(cfg.device)
            record = {"variant": name, "settings": settings, "params": result.params, "macs": result.macs,
                      "blocks": len(result.spec.blocks), "mutations_kept": result.summary.get("mutations_accepted"),
                      "search_s": result.summary["elapsed_s"], "knn_acc": round(_knn(run, data, fraction, seed, device), 3)}
            if finetune_epochs > 0:
                ft = FinetuneConfig(model=str(run), out=str(run / "finetune" / f"f{fraction:g}-e{finetune_epochs}"),
                                    data=eval_data, data_root=eval_root, level=level, fraction=fraction,
                                    epochs=finetune_epochs, warmup_epochs=min(1, finetune_epochs - 1), seed=seed,
                                    threads=cfg.threads, device=cfg.device, progress=cfg.progress)
                record["finetune_acc"] = run_finetune(ft, console, data).result["final_acc"]
            append_jsonl(out / "ablation.jsonl", record)
        records = [r for r in read_jsonl(out / "ablation.jsonl") if r.get("settings") == settings]
        _write_table(out, records, settings, cfg)
        return records


def _write_table(out: Path, records: list[dict], settings: dict, cfg: SearchConfig) -> None:
    from edgenas.report.formats import to_csv, to_markdown
    from edgenas.report.tables import Table

    order = {name: i for i, name in enumerate(["full", *(f"no-{c.replace('_', '-')}" for c in COMPONENTS)])}
    rows = []
    for r in sorted(records, key=lambda r: order.get(r["variant"], 99)):
        rows.append([r["variant"], f"{r['params']:,}", f"{r['macs'] / 1e6:.2f}M", r["blocks"], r["mutations_kept"],
                     f"{r['knn_acc']:.2f}", f"{r['finetune_acc']:.2f}" if "finetune_acc" in r else "-",
                     f"{r['search_s'] / 60:.1f}"])
    note = (f"Every variant: {cfg.epochs} epochs of the same data and SSL objective ({cfg.ssl}), seed {cfg.seed}. "
            f"kNN (k=20, weighted) on {settings['eval_data']}: {100 * settings['fraction']:g}% of the pool as "
            "labelled memory, the hold-out as queries"
            + (f"; fine-tuned {settings['finetune_epochs']} epochs on the same labels." if settings["finetune_epochs"]
               else "."))
    table = Table("ablation", "Ablation of the evolution method",
                  ["variant", "params", "MACs", "blocks", "mutations kept", "kNN acc %", "fine-tuned acc %",
                   "search min"], rows, note)
    atomic_write_text(out / "ablation.md", to_markdown(table, 1))
    atomic_write_text(out / "ablation.csv", to_csv(table))


