"""Supervised fine-tuning with few labels, and the SSL pre-training of the two-stage baseline.

``run_finetune(FinetuneConfig(...))`` trains a searched network (from its
preserved weights, from scratch, or from a separate SSL pre-training) or a
baseline on a stratified fraction of the labels, and records its accuracy on
the fixed hold-out. The protocol is the same for every model, so that the
numbers compare.
"""

from edgenas.train.config import INITS, FinetuneConfig
from edgenas.train.finetune import FinetuneResult, run_finetune

__all__ = ["INITS", "FinetuneConfig", "FinetuneResult", "run_finetune"]
