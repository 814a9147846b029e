"""Does a proxy search's race rank its own candidates? Fine-tune every raced candidate and correlate.

A finished ``edgenas search --strategy proxy --race N`` run records each raced
candidate's rotation accuracy (``race.jsonl``) and its network
(``proxy.jsonl``). This fine-tunes each of them, and any ``--extra`` network
(``fast_cnn`` at a width, or an ``arch.json``), from a random start under one
protocol (``--epochs`` on ``--fraction`` of the labels, no self-training,
seed ``--finetune-seed``: ``evaluate``'s), and, with ``--split-epochs``, for
that many epochs on 80% of those labels scored on the other 20% (what a
fine-tuning could race on without the hold-out). Then it prints the Spearman
correlation of each score (rotation, the search's zero-cost proxies, their rank averages as
``--race-by`` forms them) with the protocol's accuracy and where each score's pick places, and plots accuracy
against rotation accuracy (``OUT/race_study.png``)::

    edgenas search --data imagefolder --data-root DIR --target local --latency-ms 0.058 --latency-margin 0 \\
        --lut LUT --race 24 --out runs/race24
    python benchmarks/race_study.py --run runs/race24 --extra fast_cnn_050 --data-root DIR --threads 2 \\
        --out runs/race24-study

Every fine-tuning is kept under ``OUT/`` and reused when the script is run again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


#: the zero-cost proxies a search may have scored its candidates with (``proxy.jsonl``)
ZERO_COST = ("naswot", "synflow", "zen")


def raced_specs(run: Path) -> list[tuple[str, object, float, dict[str, float]]]:
    """``(name, spec without projector, rotation accuracy, zero-cost scores)`` of each raced candidate, in race
    order."""
    from edgenas.space.registry import spec_from_dict

    if not (run / "race.jsonl").is_file() or not (run / "proxy.jsonl").is_file():
        raise SystemExit(f"error: {run} is not a finished proxy search with a race (race.jsonl, proxy.jsonl)")
    scored = {}
    for line in (run / "proxy.jsonl").read_text().splitlines():
        row = json.loads(line)
        scored[row["sha256"]] = row
    out = []
    for i, line in enumerate((run / "race.jsonl").read_text().splitlines()):
        row = json.loads(line)
        steps, record = row["steps"], scored[row["sha256"]]
        spec = dataclasses.replace(spec_from_dict(record["spec"]), projector=())
        out.append((f"cand{i:02d}", spec, row[f"rot_acc_{steps}"], {k: record[k] for k in ZERO_COST if k in record}))
    return out


def score_figures(rows: list[dict]) -> list[dict]:
    """Of each score of the raced candidates (rotation, each zero-cost proxy, and the rank average of rotation
    and each proxy, chosen as the search's ``--race-by`` chooses): its Spearman with ``accuracy``, its pick,
    and the pick's accuracy and place among the raced (1: the most accurate)."""
    from bench.latency_table import spearman
    from edgenas.search.proxies import rank_average
    from edgenas.search.race import race_choice

    raced = [r for r in rows if r["rotation"] is not None]
    accuracy = [r["accuracy"] for r in raced]
    place = {r["network"]: i + 1 for i, r in enumerate(sorted(raced, key=lambda r: -r["accuracy"]))}
    proxies = [k for k in ZERO_COST if all(k in r for r in raced)]
    figures = []
    for name in ("rotation", *proxies, *(f"rotation+{k}" for k in proxies)):
        score = ([-rank for rank in rank_average(raced, name.split("+"))] if "+" in name  # lower rank: better
                 else [r[name] for r in raced])
        pick = race_choice(raced, name)
        figures.append({"score": name, "spearman": round(spearman(score, accuracy), 3),
                        "pick": raced[pick]["network"], "pick_accuracy": raced[pick]["accuracy"],
                        "place": place[raced[pick]["network"]]})
    return figures


def main() -> None:
    from race_score import stage_spec

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a finished proxy search run with a race")
    p.add_argument("--extra", default="", help="comma list of fast_cnn[_WWW] or arch.json to fine-tune beside them")
    p.add_argument("--data", default="imagefolder")
    p.add_argument("--data-root", required=True)
    p.add_argument("--fraction", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--split-epochs", type=int, default=8, help="epochs of the labelled-split race (0: none)")
    p.add_argument("--finetune-seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from bench.latency_table import spearman
    from edgenas.train import FinetuneConfig, run_finetune
    from edgenas.train.data import load_protocol_data

    out = Path(args.out)
    networks = raced_specs(Path(args.run))
    networks += [(name, stage_spec(name, ()), None, {}) for name in filter(None, args.extra.split(","))]
    data = load_protocol_data(args.data, args.data_root, networks[0][1].resolution)

    def finetune(arch: Path, name: str, epochs: int, select: float) -> dict:
        cfg = FinetuneConfig(model=str(arch), init="random", out=str(out / name), data=args.data,
                             data_root=args.data_root, fraction=args.fraction, epochs=epochs, min_steps=0,
                             unlabelled=False, select_fraction=select, seed=args.finetune_seed,
                             threads=args.threads, progress=False)
        return run_finetune(cfg, data=data).result

    def last_split_accuracy(name: str) -> float:
        """The selection split's accuracy after the last epoch (not the best epoch's: a race scores where it ends)."""
        epochs = [json.loads(line) for line in (out / name / "metrics.jsonl").read_text().splitlines()]
        return [e for e in epochs if e.get("event") == "epoch"][-1]["select_acc"]

    rows = []
    for name, spec, rot, zero_cost in networks:
        arch = out / "archs" / f"{Path(name).stem}.json"
        arch.parent.mkdir(parents=True, exist_ok=True)
        spec.save(arch)
        result = finetune(arch, f"protocol/{arch.stem}", args.epochs, 0.0)
        row = {"network": name, "arch": spec.describe(), "rotation": rot, **zero_cost,
               "accuracy": result["final_acc"], "params": result["params"], "macs": result["macs"]}
        if args.split_epochs:
            finetune(arch, f"split/{arch.stem}", args.split_epochs, 0.2)
            row["split"] = last_split_accuracy(f"split/{arch.stem}")
        row["convs"] = len(spec.stages) + 2 * sum(s.residual for s in spec.stages) + bool(spec.stem_channels)
        rows.append(row)
        print(json.dumps(row), flush=True)
    figures = score_figures(rows)
    (out / "race_study.json").write_text(json.dumps({"networks": rows, "scores": figures}, indent=1))
    print(f"\n{'accuracy':>8} {'rotation':>8} {'split':>6} {'params':>9} {'MACs':>7}  network")
    for r in sorted(rows, key=lambda r: -r["accuracy"]):
        rot = "-" if r["rotation"] is None else f"{r['rotation']:.2f}"
        split = f"{r['split']:.1f}" if r.get("split") is not None else "-"
        print(f"{r['accuracy']:8.2f} {rot:>8} {split:>6} {r['params']:9,} {r['macs'] / 1e6:6.1f}M  "
              f"{r['network']}: {r['arch']}")
    print(f"\nthe raced, scored against the {args.epochs}-epoch accuracy (place 1: the most accurate):")
    print(f"  {'score':16} {'Spearman':>8} {'pick':>7} {'accuracy':>8} {'place':>6}")
    raced = sum(r["rotation"] is not None for r in rows)
    for f in figures:
        print(f"  {f['score']:16} {f['spearman']:+8.3f} {f['pick']:>7} {f['pick_accuracy']:8.2f} "
              f"{f['place']:>3}/{raced}")
    print(f"\nSpearman with the {args.epochs}-epoch accuracy:")
    for key in ("split", "params", "macs", "convs"):
        pairs = [(r[key], r["accuracy"]) for r in rows if r.get(key) is not None]
        if len(pairs) >= 3:
            print(f"  {key:9} {spearman(*zip(*pairs)):+.3f}  (n = {len(pairs)})")
    _plot(rows, out / "race_study.png", args.epochs)


def _plot(rows: list[dict], path: Path, epochs: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    raced = [r for r in rows if r["rotation"] is not None]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter([r["rotation"] for r in raced], [r["accuracy"] for r in raced], c="tab:blue", label="raced")
    for r in rows:
        if r["rotation"] is None:
            ax.axhline(r["accuracy"], color="tab:red", lw=1, ls="--", label=r["network"])
    ax.set(xlabel="rotation accuracy in the race (%)", ylabel=f"accuracy after {epochs} epochs (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
