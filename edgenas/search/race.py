"""A label-free proxy that trains: how well a short training learns to tell how an image was turned.

Zero-cost proxies do not rank stage networks that fill the same budget (Spearman
0.10-0.21 over 24, docs/performance.md); after 200-300 steps of rotation prediction
(Gidaris et al., ICLR 2018) on unlabelled images, the rotation accuracy on other
unlabelled images does (0.52 over the same 24). ``--race K`` of the proxy strategy
trains the zero-cost ranking's K best this way and keeps the one that learns best.

:func:`rotation_accuracy` is the measurement (``benchmarks/rotation_proxy.py`` runs it
on the proxy study's networks); it reads images only, never a label.
"""

from __future__ import annotations

import dataclasses
import time

import torch
import torch.nn.functional as F

__all__ = ["FLOOR", "HELD", "MIN_TRAIN", "race_choice", "rotation_accuracy", "small_candidates"]

#: unlabelled images held out of the rotation training and scored in all four turns
HELD = 1000
#: the fewest images left to train on (one batch)
MIN_TRAIN = 128
#: the rotation accuracy (%) a race's winner must pass for the race to decide: chance is 25%, and three
#: standard errors of 4 x HELD predictions reach 27%; below it (images that look the same turned, such as
#: the synthetic shapes) no candidate learned the task and the zero-cost ranking decides
FLOOR = 30.0


def small_candidates(specs: list, first: int, limit: int) -> bool:
    """Whether the candidates are small enough for the longer default race: the median MACs of the ``first``
    sampled (the search's ``SMALL_RACE``) are at most ``limit`` (``SMALL_MACS``: a tight latency or MAC budget)."""
    macs = sorted(spec.cost()[1] for spec in specs[:first])
    return bool(macs) and macs[len(macs) // 2] <= limit


def race_choice(scores: list[dict[str, float]], by: str) -> int:
    """The index of the pick among ``scores`` (each with ``rotation`` and the scores ``by`` names): one score
    (rotation: the best rotation learner), its best; several joined by ``+`` (rotation+naswot), the best average
    of their ranks (a tie goes to the better rotation learner)."""
    from edgenas.search.proxies import rank_average

    if "+" not in by:
        return max(range(len(scores)), key=lambda i: scores[i][by])
    ranks = rank_average(scores, by.split("+"))
    return min(range(len(scores)), key=lambda i: (ranks[i], -scores[i]["rotation"]))


def rotation_accuracy(spec, images: torch.Tensor, mean, std, steps: int, batch: int = 128, lr: float = 0.05,
                      seed: int = 0, device: torch.device | None = None, bf16: bool = True) -> dict[str, float]:
    """Train ``spec`` (its classifier swapped for 4 outputs, no projector) for ``steps`` steps of rotation
    prediction on ``images`` (uint8 ``[N, 3, R, R]``, flip + translate first, one-cycle SGD) and score it.

    Returns:
        ``rot_acc_<step>`` (rotation accuracy in % on :data:`HELD` held-out images x 4 turns) after a third,
        two thirds and all of the steps, and ``seconds``.

    Raises:
        ValueError: fewer than ``HELD + batch`` images, or ``steps`` below 3.
    """
    from edgenas.data.views import normalize_batch
    from edgenas.models import build
    from edgenas.ssl.rotation import rotate_batch
    from edgenas.train.augment import crop_flip

    if len(images) < HELD + batch or steps < 3:
        raise ValueError(f"rotation ranking needs at least {HELD + batch} images and 3 steps, "
                         f"got {len(images)} and {steps}")
    device = device or torch.device("cpu")
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    held = normalize_batch(images[perm[:HELD]], mean, std)
    held = [torch.rot90(held, k, dims=(2, 3)) for k in range(4)]
    rows = perm[HELD:]
    torch.manual_seed(seed)
    net = build(dataclasses.replace(spec, num_classes=4, projector=()))
    net = net.to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    # a quarter of the steps warm up, and at least one (OneCycleLR divides by zero at 4 steps otherwise)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=max(0.25, 2 / steps),
                                                anneal_strategy="linear")
    g = torch.Generator().manual_seed(2)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    out, t0 = {}, time.perf_counter()
    for step in range(1, steps + 1):
        x = crop_flip(images[rows[torch.randint(0, len(rows), (batch,), generator=g)]], g, mean, std)
        x, k = rotate_batch(x, g)
        net.train()
        with amp:
            loss = F.cross_entropy(net(x.to(device, memory_format=torch.channels_last)), k.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step in (steps // 3, 2 * steps // 3, steps):
            net.eval()
            with torch.no_grad(), amp:
                right = sum((net(turned[j:j + 250].to(device)).argmax(1) == k).sum().item()
                            for k, turned in enumerate(held) for j in range(0, HELD, 250))
            out[f"rot_acc_{step}"] = right * 100 / (4 * HELD)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out
