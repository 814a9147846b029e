"""Label-free quality of a run's weights: weighted kNN on frozen features, for every start a fine-tuning can take.

For a search run directory, the penultimate features of the derived network
under each set of weights the run holds:

- ``random``: a fresh initialisation (the floor);
- ``search``: the weights the supernet left (``weights_search.pt`` after a
  refinement, else ``weights.pt``);
- ``refined``: ``weights.pt`` after ``--refine-epochs``;
- ``two-stage``: ``pretrain/weights.pt`` (the two-stage baseline), if trained;

are scored by weighted kNN (k=20, cosine, temperature 0.07; Wu et al. 2018)
with a stratified ``--fraction`` of the training pool as the labelled memory
and the fixed hold-out as the test set. No training: it measures what the
self-supervised features already separate. Prints a markdown table.

    python benchmarks/ssl_features.py runs/cifar-darts --data imagefolder \\
        --data-root ~/.cache/edgenas/cifar10-jpg/train [--fraction 0.1] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", default="synthetic")
    parser.add_argument("--data-root")
    parser.add_argument("--fraction", type=float, default=0.1, help="labelled memory: share of the pool")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from edgenas.data.splits import stratified_fraction
    from edgenas.evaluate.knn import knn_accuracy
    from edgenas.evaluate.protocol import features_of
    from edgenas.space.registry import load_spec
    from edgenas.train.candidates import load_candidate
    from edgenas.train.data import load_protocol_data

    run = args.run
    spec = load_spec(run)
    data = load_protocol_data(args.data, args.data_root, spec.resolution)
    classes = len(data.pool.classes)
    starts = {"random": None}
    refined = (run / "weights_search.pt").is_file()
    starts["search"] = run / ("weights_search.pt" if refined else "weights.pt")
    if refined:
        starts["refined"] = run / "weights.pt"
    if (run / "pretrain" / "weights.pt").is_file():
        starts["two-stage"] = run / "pretrain" / "weights.pt"
    bank = stratified_fraction(data.pool.labels, args.fraction, args.seed)
    device = torch.device("cpu")
    print("| weights | kNN top-1 (%) | seconds |\n|---|---:|---:|")
    for name, path in starts.items():
        t0 = time.perf_counter()
        init = "random" if path is None else "pretrained"
        net = load_candidate(str(run), init, classes, spec.resolution, args.seed, pretrained=path).model
        train = features_of(net, data.pool.images[bank], data.mean, data.std, device)
        test = features_of(net, data.holdout.images, data.mean, data.std, device)
        acc = knn_accuracy(train, data.pool.labels[bank], test, data.holdout.labels, k=min(20, len(bank)))
        print(f"| {name} | {acc:.2f} | {time.perf_counter() - t0:.1f} |", flush=True)
    print(f"\n{len(bank):,} labelled features as memory, {len(data.holdout):,} hold-out images, k=20.")


if __name__ == "__main__":
    main()
