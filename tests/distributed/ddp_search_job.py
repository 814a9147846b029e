"""Run by torchrun in test_ddp.py: the tiny search, its result written per rank as JSON."""

import json
import os
import sys

import torch

torch.set_num_threads(1)

from edgenas.search.config import SearchConfig  # noqa: E402
from edgenas.search.runner import run_search  # noqa: E402


def main() -> None:
    out, options = sys.argv[1], json.loads(sys.argv[2])
    stop = int(options.pop("stop_at", 0))

    def on_step(step: int) -> None:
        if stop and step == stop:
            raise SystemExit(3)  # an interruption after a checkpoint
    result = run_search(SearchConfig(**options, out=out), on_step=on_step)
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"spec": result.spec.to_dict(), "sha": result.spec.sha256()}, fh)


if __name__ == "__main__":
    main()
