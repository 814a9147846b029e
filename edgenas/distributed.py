"""Data-parallel training under ``torchrun``: process group, sharding, gathering, rank-0 writes.

``torchrun --nproc-per-node N -m edgenas search ...`` (or ``finetune``) sets
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; :func:`setup` joins the process
group (gloo on CPU, NCCL on CUDA, one GPU per process) and every rank then
runs the same loop on its shard of each global batch:

* every rank draws the same global batch (the seeded order of a single
  process) and takes the rows ``rank::world`` of it, the contract of torch's
  ``DistributedSampler``; augmentations are drawn for the whole batch, so a
  rank's images are exactly those a single process would see;
* weight and architecture gradients are averaged by
  ``DistributedDataParallel``; a loss that needs the whole batch (Barlow
  Twins' cross-correlation) gathers the projections first
  (:func:`gather`, whose backward returns each rank its share);
* only rank 0 writes files, logs and progress bars.

Batch-norm statistics are per rank unless ``--sync-bn`` asks for statistics
over the whole batch (:func:`sync_batch_norm`: PyTorch's ``SyncBatchNorm`` on
CUDA; on the CPU, where it has no kernel, :class:`CrossRankBatchNorm`, the same
arithmetic on an all-reduce of the per-rank sums). With it, N processes compute
what one process computes on the whole batch, up to float summation order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from edgenas.errors import ConfigError

__all__ = ["CrossRankBatchNorm", "World", "gather", "is_main_process", "setup", "sync_batch_norm"]


@dataclass(frozen=True)
class World:
    """This process's place: ``rank`` of ``size`` (1: not distributed), and its device."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a global batch (every ``size``-th, from ``rank``)."""
        return rows[self.rank::self.size] if self.distributed else rows

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def same_everywhere(self, tensor: torch.Tensor) -> bool:
        """Whether ``tensor`` is bitwise equal on every rank."""
        if not self.distributed:
            return True
        t = tensor.detach().float().contiguous()
        gathered = [torch.empty_like(t) for _ in range(self.size)]
        torch.distributed.all_gather(gathered, t)
        return all(torch.equal(g, gathered[0]) for g in gathered)


def is_main_process() -> bool:
    """Rank 0 of a ``torchrun`` (or a single process): the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def setup(device: str = "auto") -> World:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1); else a single process.

    Raises:
        ConfigError: ``--device cuda`` without CUDA, or more processes than GPUs.
    """
    from edgenas.accelerator import resolve_device

    size = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if size <= 1:
        return World(device=dev)
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        if local >= torch.cuda.device_count():
            raise ConfigError(f"local rank {local} has no GPU ({torch.cuda.device_count()} visible): lower "
                              "--nproc-per-node")
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return World(rank, size, local, dev)


def gather(x: torch.Tensor, world: World) -> torch.Tensor:
    """``x`` of every rank concatenated along dim 0, in rank order; its gradient flows back to each rank's rows.

    The backward sums the gradients of every rank's copy of the result: with
    the same loss computed on every rank and DDP averaging the parameter
    gradients, the result is the gradient of the loss of the whole batch.
    """
    if not world.distributed:
        return x
    from torch.distributed import _functional_collectives as fc

    return fc.wait_tensor(fc.all_gather_single_autograd(x.contiguous(), 0, torch.distributed.group.WORLD))


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is the all-reduced gradient (every rank's loss depends on the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        torch.distributed.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        torch.distributed.all_reduce(out)
        return out


class CrossRankBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics cover the batch of every rank (``SyncBatchNorm`` for the CPU).

    The per-channel count, sum and sum of squares are all-reduced; mean and
    (biased) variance normalise, the unbiased variance feeds the running
    statistics, as in :class:`torch.nn.BatchNorm2d` on the whole batch.
    Shapes: ``[N, C]`` or ``[N, C, H, W]``. Outside training or a process group it is a plain batch norm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(f"expected a 2-D or 4-D input, got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and torch.distributed.is_available() and torch.distributed.is_initialized()
                and torch.distributed.get_world_size() > 1):
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]
        c = x.shape[1]
        shape = [1, c] + [1] * (x.dim() - 2)
        count = torch.full((1,), x.numel() // c, dtype=x.dtype, device=x.device)
        totals = _SumAcrossRanks.apply(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        mean = totals[:c] / n
        # two passes, as a single-process batch norm computes it (E[x^2] - mean^2 loses digits)
        var = _SumAcrossRanks.apply(((x - mean.view(shape)) ** 2).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                m = self.momentum if self.momentum is not None else 0.1
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
                self.num_batches_tracked += 1
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def sync_batch_norm(module: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Every batch norm of ``module`` with whole-batch statistics across ranks (in place where possible)."""
    if device.type == "cuda":
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in list(module.named_children()):
        if isinstance(child, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            new = CrossRankBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(module, name, new)
        else:
            sync_batch_norm(child, device)
    return module
