"""A difficulty score per image, for a curriculum over real data: how much two views of it disagree.

An image whose two augmented views the current network maps far apart is one
it has not learned to be invariant on yet: ``1 - cos(f(v1), f(v2))`` of the
pooled features (0 easy, up to 2 hard). The curriculum shows the easiest share
of the real images first and all of them at its last stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["difficulty_scores", "easiest"]


@torch.no_grad()
def difficulty_scores(net, images: torch.Tensor, views, generator: torch.Generator, device: torch.device,
                      batch: int = 256) -> torch.Tensor:
    """``[N]`` scores of uint8 ``images [N, 3, H, W]`` under ``net.features`` (eval mode)."""
    was = net.training
    net.eval()
    out = []
    for start in range(0, len(images), batch):
        v1, v2 = views(images[start:start + batch], generator)
        f1 = net.features(v1.to(device, memory_format=torch.channels_last))
        f2 = net.features(v2.to(device, memory_format=torch.channels_last))
        out.append((1 - F.cosine_similarity(f1, f2, dim=1)).float().cpu())
    net.train(was)
    return torch.cat(out) if out else torch.zeros(0)


def easiest(scores: torch.Tensor, fraction: float) -> torch.Tensor:
    """Positions of the ``fraction`` (at least one) lowest scores, sorted."""
    count = max(1, min(len(scores), int(round(fraction * len(scores)))))
    return scores.argsort()[:count].sort().values
