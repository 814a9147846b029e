"""Where torch runs and in what precision: the one owner of ``--device`` and ``--amp`` for every job."""

from __future__ import annotations

from contextlib import nullcontext

import torch

from edgenas.errors import ConfigError

__all__ = ["autocast", "check_accelerator_options", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; CUDA asked for where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


def check_accelerator_options(cfg, device: torch.device) -> None:
    """``--amp bf16`` is for CUDA; say so instead of ignoring it."""
    if getattr(cfg, "amp", "none") != "none" and device.type != "cuda":
        raise ConfigError(f"--amp {cfg.amp} is mixed precision on CUDA; this run is on {device}")


def autocast(cfg, device: torch.device):
    """bf16 autocast on CUDA with ``--amp bf16``; otherwise nothing."""
    if getattr(cfg, "amp", "none") == "bf16" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


