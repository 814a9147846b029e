"""Score networks with a finished proxy search's rotation race: would the race have chosen them?

The proxy strategy keeps the candidate that learns rotation prediction best
(:mod:`edgenas.search.race`). This reruns that race, on the run's own images
(its ``config.yaml``: data, subset, seed, steps), for any stage networks:
``arch.json`` files or ``fast_cnn`` at a width (``fast_cnn_050``). No label
is read. It runs at the search's own ``threads`` unless told otherwise: the
thread count changes the arithmetic (one network scored 72.2% at 1 thread and
67.2% at 2, the search's figure to the digit). It prints one JSON line per
network and, last, the networks from the best rotation learner down::

    python benchmarks/race_score.py runs/demo/arch.json fast_cnn fast_cnn_050 --run runs/demo
"""

from __future__ import annotations

import argparse
import dataclasses
import json


def stage_spec(name: str, projector: tuple[int, ...]):
    """An ``arch.json`` path, or ``fast_cnn`` with an optional width suffix, as a stage-space network."""
    from edgenas.models.baselines import resolve_baseline
    from edgenas.models.cnns import fast_cnn_spec
    from edgenas.space.registry import load_spec

    if name.endswith(".json"):
        return load_spec(name)
    base, width = resolve_baseline(name)
    if base != "fast_cnn":
        raise SystemExit(f"error: {name} is not a stage-space network (an arch.json or fast_cnn[_WWW])")
    return dataclasses.replace(fast_cnn_spec(10, width or 1.0), projector=projector)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("networks", nargs="+", help="arch.json files or fast_cnn[_WWW]")
    p.add_argument("--run", required=True, help="a finished proxy search's run directory (its race settings)")
    p.add_argument("--threads", type=int, default=None,
                   help="default: the search's (its config.yaml; 0 = every core, as the search ran)")
    args = p.parse_args()

    import torch
    import yaml

    from edgenas.data.views import channel_stats
    from edgenas.search.config import SearchConfig
    from edgenas.search.proxy import race_score

    from pathlib import Path

    if not (Path(args.run) / "race.jsonl").is_file():
        raise SystemExit(f"error: {args.run} is not a finished proxy search with a race (no race.jsonl)")
    with open(Path(args.run) / "config.yaml") as f:
        cfg = SearchConfig.from_dict(yaml.safe_load(f))
    threads = cfg.threads if args.threads is None else args.threads
    if threads:  # as edgenas.search.runner sets them
        torch.set_num_threads(threads)
    data = cfg.load_images(holdout="train")  # as the search loaded them: same subset, hold-out excluded
    mean, std = channel_stats(data.images)
    raced = (Path(args.run) / "race.jsonl").read_text().splitlines()
    steps = json.loads(raced[0])["steps"]  # the race's own (its default depends on the candidates' size)
    scores = {}
    for name in args.networks:
        spec = stage_spec(name, cfg.projector)
        scores[name] = race_score(cfg, spec, data.images, mean, std, torch.device("cpu"), steps)
        print(json.dumps({"network": name, **scores[name]}), flush=True)
    key = f"rot_acc_{steps}"
    for name in sorted(scores, key=lambda n: -scores[n][key]):
        print(f"{scores[name][key]:6.2f}%  {name}")


if __name__ == "__main__":
    main()
