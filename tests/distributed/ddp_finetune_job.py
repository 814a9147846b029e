"""Run by torchrun in test_ddp.py: a tiny fine-tuning of a baseline, the weights' digest per rank."""

import json
import os
import sys

import torch

torch.set_num_threads(1)

from edgenas.train import FinetuneConfig, run_finetune  # noqa: E402


def main() -> None:
    out, options = sys.argv[1], json.loads(sys.argv[2])
    result = run_finetune(FinetuneConfig(**options, out=out)).result
    rank = int(os.environ.get("RANK", "0"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as fh:
        json.dump({"final_acc": result["final_acc"], "processes": result["processes"]}, fh)


if __name__ == "__main__":
    main()
