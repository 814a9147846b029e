"""Weighted k-nearest-neighbour accuracy of frozen features: the cheap test of a self-supervised network.

Wu et al. (CVPR 2018, arXiv:1805.01978), as used by DINO: each test feature
votes among its ``k`` most cosine-similar labelled features, each neighbour
weighted by ``exp(similarity / temperature)``. No training: it measures what
the features already separate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from edgenas.errors import ConfigError

__all__ = ["knn_accuracy"]


@torch.no_grad()
def knn_accuracy(train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor,
                 k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> float:
    """Top-1 accuracy (%) of weighted kNN: features ``[N, F]``, ``[M, F]``, labels ``[N]``, ``[M]``.

    Raises:
        ConfigError: ``k`` < 1 or more than the labelled features, temperature <= 0.
    """
    if not 1 <= k <= len(train):
        raise ConfigError(f"k must lie in 1..{len(train)}, got {k}")
    if not temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    classes = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    train = F.normalize(train.float(), dim=1)
    correct = 0
    for start in range(0, len(test), chunk):
        sim = F.normalize(test[start:start + chunk].float(), dim=1) @ train.T
        top, index = sim.topk(k, dim=1)
        votes = torch.zeros(len(sim), classes).scatter_add_(1, train_labels[index], (top / temperature).exp())
        correct += int((votes.argmax(1) == test_labels[start:start + chunk]).sum())
    return 100.0 * correct / len(test)
