"""Label-free, training-free scores of untrained networks (zero-cost proxies), to rank thousands in minutes.

* ``naswot`` (Mellor et al., "Neural Architecture Search without Training", ICML 2021): the
  log-determinant of the Hamming-similarity kernel of the binary activation codes a batch of
  images produces. Networks whose units separate the images well score high. Needs images,
  no labels.
* ``synflow`` (Tanaka et al., NeurIPS 2020; as a NAS proxy, Abdelfattah et al., ICLR 2021): the
  synaptic flow ``sum |theta| * |d R / d theta|`` of the network with absolute weights on an
  all-ones input, ``R`` the sum of its outputs. Needs no data at all. Reported as ``log``.
* ``zen`` (Lin et al., "Zen-NAS", ICCV 2021): the expressivity of the network's last feature map
  under a Gaussian initialisation, ``log E|f(x) - f(x + 0.01 e)|`` for Gaussian ``x`` and ``e``,
  plus the log of every batch norm's rescaling (``sqrt`` of its batch's mean variance), which
  the normalisation would otherwise hide. Needs no data (the images give the input shape).

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

__all__ = ["PROXIES", "naswot", "rank_average", "score", "synflow", "zen"]

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


#: Zen-score's perturbation of the input, and how many Gaussian draws it averages
ZEN_GAMMA = 1e-2
ZEN_REPEATS = 2


@PROXIES.register("zen")
@torch.no_grad()
def zen(model: nn.Module, images: torch.Tensor) -> float:
    """Zen-score of ``model``'s architecture (a Gaussian-initialised copy; batch norm in train mode); higher is
    better. The feature map is ``model.feature_map(x)`` where the network has one (the map before global
    pooling), else ``model.features(x)``. ``images`` gives the input shape and device only.
    """
    net = copy.deepcopy(model).float().train()
    with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random stream is left as it was
        torch.manual_seed(0)
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
    scales: list[float] = []

    def rescaling(module, inputs):
        x = inputs[0]
        scales.append(0.5 * math.log(float(x.var(dim=(0, 2, 3), unbiased=False).mean()) + module.eps))

    hooks = [m.register_forward_pre_hook(rescaling) for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    fmap = getattr(net, "feature_map", None) or net.features
    g = torch.Generator(device=images.device).manual_seed(0)
    total = 0.0
    try:
        for _ in range(ZEN_REPEATS):
            x = torch.randn(images.shape, generator=g, device=images.device)
            e = torch.randn(images.shape, generator=g, device=images.device)
            scales.clear()
            base = fmap(x)
            log_bn = sum(scales)  # the rescaling of the unperturbed pass
            delta = float((base - fmap(x + ZEN_GAMMA * e)).abs().mean())
            total += (math.log(delta) if delta > 0 else float("-inf")) + log_bn
    finally:
        for h in hooks:
            h.remove()
    return total / ZEN_REPEATS


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
