"""One step of the DARTS bilevel optimisation (Liu et al., ICLR 2019, section 2.3).

The architecture weights alpha minimise the SSL loss on the *arch* half of the
data, the network weights w the SSL loss on the *weights* half:

    min_alpha L_arch(w*(alpha), alpha)   s.t.   w*(alpha) = argmin_w L_weights(w, alpha)

First order uses w for w*; second order takes one virtual SGD step
``w' = w - xi * grad_w L_weights`` and corrects the alpha gradient with a
finite-difference Hessian-vector product (DARTS eq. 7-8).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.func import functional_call

from edgenas.space.network import DARTSAutoSSL

# (network, view1, view2, params or None) -> scalar loss
LossFn = Callable[[DARTSAutoSSL, torch.Tensor, torch.Tensor, dict[str, torch.Tensor] | None], torch.Tensor]


def ssl_loss(net: DARTSAutoSSL, criterion: torch.nn.Module, v1: torch.Tensor, v2: torch.Tensor,
             params: dict[str, torch.Tensor] | None = None,
             gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
             paths: torch.Tensor | None = None) -> torch.Tensor:
    """SSL loss of two views through ``net`` (or through ``params`` substituted into it).

    Both views go through the network as one batch ``[2B, ...]``: one forward, and
    batch-norm statistics shared by the two views. ``gather`` joins the
    projections of every rank first (data-parallel: the loss of the whole batch).
    ``paths``: a sampled path (:meth:`DARTSAutoSSL.sample_paths`) instead of the mixture.
    """
    x = torch.cat([v1, v2])
    if paths is not None:
        z = net(x, paths)
    else:
        z = net(x) if params is None else functional_call(net, params, (x,))
    z1, z2 = z.chunk(2)
    if gather is not None:
        z1, z2 = gather(z1), gather(z2)
    return criterion(z1.float(), z2.float())


def unrolled_arch_grads(net: DARTSAutoSSL, criterion: torch.nn.Module,
                        train_views: tuple[torch.Tensor, torch.Tensor],
                        arch_views: tuple[torch.Tensor, torch.Tensor],
                        penalty: Callable[[], torch.Tensor], xi: float, weight_decay: float,
                        ) -> tuple[list[torch.Tensor], float]:
    """Second-order alpha gradients (returned, not applied) and the arch loss value.

    Args:
        train_views / arch_views: two views of a weights-half batch and an arch-half batch.
        penalty: the differentiable budget term, a function of the alphas only.
        xi: the virtual step size (DARTS uses the weights' learning rate).
    """
    named_w = dict(net.named_weight_parameters())
    alphas = net.arch_parameters()
    alpha_names = ["alpha_normal", "alpha_reduce"]

    loss_w = ssl_loss(net, criterion, *train_views)
    grads_w = torch.autograd.grad(loss_w, list(named_w.values()))
    virtual = {n: (p - xi * (g + weight_decay * p)).detach().requires_grad_(True)
               for (n, p), g in zip(named_w.items(), grads_w)}

    params = {**virtual, **dict(zip(alpha_names, alphas))}
    loss_a = ssl_loss(net, criterion, *arch_views, params) + penalty()
    grads = torch.autograd.grad(loss_a, alphas + list(virtual.values()), allow_unused=True)
    d_alpha = list(grads[:2])
    d_w = [g if g is not None else torch.zeros_like(p) for g, p in zip(grads[2:], virtual.values())]

    # Hessian-vector product by central differences around w (DARTS eq. 8).
    norm = torch.cat([g.flatten() for g in d_w]).norm()
    eps = 0.01 / (norm + 1e-12)
    implicit = []
    for sign in (1.0, -1.0):
        shifted = {n: (p + sign * eps * g).detach() for (n, p), g in zip(named_w.items(), d_w)}
        loss_s = ssl_loss(net, criterion, *train_views, {**shifted, **dict(zip(alpha_names, alphas))})
        implicit.append(torch.autograd.grad(loss_s, alphas))
    hvp = [(gp - gm) / (2 * eps) for gp, gm in zip(*implicit)]
    return [da - xi * h for da, h in zip(d_alpha, hvp)], float(loss_a.detach())
