"""``edgenas profile`` as a function: parameters and MACs of a baseline, a run directory or an ``arch.json``."""

from __future__ import annotations

from dataclasses import dataclass

from edgenas.errors import ConfigError
from edgenas.profiler import profile_model

__all__ = ["DEFAULT_NUM_CLASSES", "DEFAULT_RESOLUTION", "DEFAULT_WIDTH", "ProfileReport", "profile_target"]

DEFAULT_RESOLUTION = 32
DEFAULT_WIDTH = 1.0
DEFAULT_NUM_CLASSES = 10


@dataclass(frozen=True)
class ProfileReport:
    """What ``edgenas profile`` prints; ``kind`` is ``baseline`` or ``arch``."""

    name: str
    kind: str
    resolution: int
    width: float | None
    num_classes: int
    params: int
    macs: int

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "resolution": self.resolution,
            "width": self.width,
            "num_classes": self.num_classes,
            "params": self.params,
            "macs": self.macs,
        }

    def budget_share(self, max_params: int, max_macs: int) -> dict[str, float]:
        """The share of each budget the network uses (1.0: all of it)."""
        return {"params": self.params / max_params, "macs": self.macs / max_macs}


def profile_target(
    target: str,
    resolution: int | None = None,
    width: float | None = None,
    num_classes: int | None = None,
) -> ProfileReport:
    """Profile a baseline name, a run directory (holding ``arch.json``) or an ``arch.json``.

    Args:
        target: a baseline name (``mobilenet_v2``, ``mobilenet_v2_035``, ...) or a path.
        resolution: input side in pixels; None: 32 for a baseline, the spec's
            own resolution for an ArchSpec.
        width, num_classes: baselines only (an ArchSpec fixes both); None: 1.0 and 10.

    Raises:
        UnknownNameError: ``target`` is neither a baseline nor an existing path.
        ConfigError: a baseline-only option given for an ArchSpec, or bad values.
        ArchSpecError: the arch.json is missing or malformed.
    """
    from edgenas.models import resolve_model_name
    from edgenas.models.baselines import build_baseline

    name = resolve_model_name(target)
    if name.kind == "baseline":
        res = resolution if resolution is not None else DEFAULT_RESOLUTION
        classes = num_classes if num_classes is not None else DEFAULT_NUM_CLASSES
        model = build_baseline(target, num_classes=classes, width=width, resolution=res)
        used_width = width if width is not None else (name.width if name.width is not None else DEFAULT_WIDTH)
        profile = profile_model(model, res)
        return ProfileReport(name.baseline, "baseline", res, used_width, classes, profile.params, profile.macs)
    if not name.exists:
        raise ConfigError(f"no such file or directory: {target}")
    for option, value in (("--width", width), ("--num-classes", num_classes)):
        if value is not None:
            raise ConfigError(f"{option} applies to baselines only; {target} fixes it in its arch.json")
    return _profile_arch(name.path, resolution)


def _profile_arch(path, resolution: int | None) -> ProfileReport:
    from dataclasses import replace

    from edgenas.models import build
    from edgenas.space.registry import load_spec

    spec = load_spec(path)
    if spec.num_classes < 1:
        raise ConfigError(f"{path} has no classifier (num_classes {spec.num_classes}): it is not a network to deploy")
    # Count what gets deployed: the SSL projector is dropped before export.
    # Re-validating through the spec also rejects a resolution its reductions cannot divide.
    spec = replace(spec, projector=(), resolution=resolution if resolution is not None else spec.resolution)
    profile = profile_model(build(spec), spec.resolution, spec.in_channels)
    return ProfileReport(str(path), "arch", spec.resolution, None, spec.num_classes, profile.params, profile.macs)
