"""Where torch runs and in what precision: the one owner of ``--device`` and ``--amp`` for every job."""

from __future__ import annotations

import functools
from contextlib import nullcontext
from pathlib import Path

import torch

from edgenas.errors import ConfigError

__all__ = ["amp_of", "autocast", "check_accelerator_options", "cpu_bf16", "fp32_note", "native_bf16",
           "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``; CUDA asked for where there is none is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


@functools.cache
def cpu_bf16() -> bool:
    """Whether this CPU computes bf16 natively (x86 AVX512-BF16 or AMX, Arm BF16): where bf16 autocast pays.

    Read from ``/proc/cpuinfo``'s flags (False where there is none to read).
    """
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
             for flag in line.split(":", 1)[1].split()}
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 natively (CUDA, or a CPU with native bf16): where bf16 autocast pays."""
    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16())


def amp_of(cfg, device: torch.device) -> str:
    """The precision a job runs in: ``--amp``, with ``auto`` meaning bf16 where the device computes it natively."""
    amp = getattr(cfg, "amp", "none")
    if amp == "auto":
        return "bf16" if native_bf16(device) else "none"
    return amp


def fp32_note(cfg, device: torch.device) -> str | None:
    """One line for a user whose ``--amp auto`` job trains in fp32 on a CPU without native bf16, else None."""
    if getattr(cfg, "amp", "none") != "auto" or device.type != "cpu" or cpu_bf16():
        return None
    return ("note: this CPU has no native bf16 (AVX512-BF16, AMX or Arm BF16), so training runs in fp32 "
            "(5-6x slower than bf16 in one measurement, docs/performance.md#the-machines); --time-budget MINUTES "
            "fits the epochs to your time")


def check_accelerator_options(cfg, device: torch.device) -> None:
    """``--amp bf16`` needs a device that computes bf16: CUDA, or a CPU with native bf16; say so otherwise."""
    if getattr(cfg, "amp", "none") in ("none", "auto"):
        return
    if device.type == "cpu" and not cpu_bf16():
        raise ConfigError(f"--amp {cfg.amp}: this CPU has no native bf16 (AVX512-BF16, AMX or Arm BF16), so bf16 "
                          "would be slower than fp32 here; leave --amp none")


def autocast(cfg, device: torch.device):
    """bf16 autocast with ``--amp bf16`` (or ``auto`` where bf16 is native: CUDA, a CPU with native bf16)."""
    if amp_of(cfg, device) == "bf16" and device.type in ("cuda", "cpu"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


