"""Label-free, training-free scores of untrained networks (zero-cost proxies), to rank thousands in minutes.

* ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021): the
  log-determinant of the Hamming-similarity kernel of the binary activation codes a batch of
  images produces. Networks whose units separate the images well score high. Needs images,
  no labels.
* ``synflow`` (Tanaka et al., NeurIPS 2020; as a NAS proxy, Abdelfattah et al., ICLR 2021): the
  synaptic flow ``sum |theta| * |d R / d theta|`` of the network with absolute weights on an
  all-ones input, ``R`` the sum of its outputs. Needs no data at all. Reported as ``log``.

:func:`score` computes the proxies a caller asks for; :func:`rank_average` joins several into
one ranking (each proxy's rank, averaged). Each proxy is registered in :data:`PROXIES`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from bench.registry import Registry

__all__ = ["PROXIES", "naswot", "rank_average", "score", "synflow"]

Proxy = Callable[[nn.Module, torch.Tensor], float]

#: units of one conv input NASWOT's kernel reads at most (an evenly strided subsample of larger ones):
#: the kernel's cost is images^2 x units, and a 32x32 map of 120 channels has 123k of them
MAX_UNITS = 4096
PROXIES: Registry[Proxy] = Registry("proxy")


@PROXIES.register("naswot")
@torch.no_grad()
def naswot(model: nn.Module, images: torch.Tensor) -> float:
    """log|det K| of the activation codes of ``images`` ``[N, C, R, R]`` (normalised); higher is better.

    The code of an image is the sign pattern of every conv's input (after a ReLU: which units
    fire), each input read at :data:`MAX_UNITS` evenly spaced units at most. ``K[i, j]`` counts
    the units on which images ``i`` and ``j`` agree.
    """
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)
    first = [True]

    def record(module, inputs):
        if first[0]:  # the stem's input is the image, not a code
            first[0] = False
            return
        c = inputs[0].detach().flatten(1)
        if c.shape[1] > MAX_UNITS:  # an even subsample of a large layer's units: the kernel costs N^2 x units
            c = c[:, :: -(-c.shape[1] // MAX_UNITS)]
        c = (c > 0).float()
        # agreements = both on + both off = c c^T + (1 - c)(1 - c)^T = units - |c_i| - |c_j| + 2 c c^T
        on = c.sum(1)
        kernel.add_((c.shape[1] - on[:, None] - on[None, :] + 2 * (c @ c.T)).double())

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.train()  # batch statistics: an untrained network's running ones are meaningless
    try:
        model(images)
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


@PROXIES.register("synflow")
def synflow(model: nn.Module, images: torch.Tensor) -> float:
    """log of the synaptic flow of ``model`` (its weights made absolute, in float64, eval mode); higher is better.


    ``images`` only gives the input shape: the input is all ones. Batch norm is in eval
    mode (fresh statistics: the identity), so the score is a property of the weights alone.
    """
    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    x = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
    out = net(x).sum()
    grads = torch.autograd.grad(out, [p for p in net.parameters()], allow_unused=True)
    total = sum(float((p.detach() * g).sum()) for p, g in zip(net.parameters(), grads) if g is not None)
    return math.log(total) if total > 0 else float("-inf")


def score(model: nn.Module, images: torch.Tensor, proxies: Sequence[str] = ("naswot", "synflow")
          ) -> dict[str, float]:
    """Every proxy of ``proxies`` for ``model`` on the batch ``images`` (names from :data:`PROXIES`).

    Raises:
        UnknownNameError: an unknown proxy.
    """
    return {name: PROXIES.get(name)(model, images) for name in proxies}


def rank_average(scores: Sequence[dict[str, float]], proxies: Sequence[str]) -> list[float]:
    """Each network's average rank over ``proxies`` (0 = best), in the order of ``scores``."""
    n = len(scores)
    total = [0.0] * n
    for name in proxies:
        order = sorted(range(n), key=lambda i: -scores[i][name])
        for rank, i in enumerate(order):
            total[i] += rank
    return [t / len(proxies) for t in total]
