"""What ``edgenas export`` feeds the exporters: the network, its input spec, calibration and held-out data.

A model source is a run directory (``arch.json`` + preserved ``weights.pt``;
data options default to its ``config.yaml``), a bare ``arch.json`` (random
weights unless ``weights`` is given) or a baseline name (random weights unless
``weights`` is given). Calibration images come from the training part of the
data (``holdout="train"``), parity images with their labels from the fixed
validation hold-out (``holdout="val"``), both seeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgenas.errors import ArchSpecError, CheckpointError, ConfigError

DEFAULT_CALIB = 300
DEFAULT_PARITY_SAMPLES = 1000
DEFAULT_NUM_CLASSES = 10
DEFAULT_RESOLUTION = 32

__all__ = ["DEFAULT_CALIB", "DEFAULT_PARITY_SAMPLES", "DataOptions", "ExportSource", "load_data", "resolve_source"]


@dataclass(frozen=True)
class DataOptions:
    """Where calibration and parity images come from (``name``: synthetic, cifar10, imagefolder, ...)."""

    name: str = "synthetic"
    root: str | None = None
    seed: int = 0
    level: int = 1


@dataclass(frozen=True)
class ExportSource:
    """A network ready to export and what is known about its input.

    Attributes:
        model: ``nn.Module`` (SSL projector dropped), ``[N, 3, R, R]`` normalised float32 -> ``[N, classes]``.
        kind, name, arch_sha256, weights: recorded in the manifest (see ``exporters.manifest.Source``).
        resolution, num_classes: the input side in pixels and the classifier size.
        mean, std: normalisation of the input in [0, 1] pixel units, None if unknown (data's default used).
        labels: class names from the source (empty if unknown).
        data: data defaults (a run's config.yaml), default_out: the export directory by default.
        warnings: one-line notes for the user (e.g. random weights).
    """

    model: object
    kind: str
    name: str
    resolution: int
    num_classes: int
    weights: str
    default_out: Path
    arch_sha256: str | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] = ()
    data: DataOptions = DataOptions()
    warnings: tuple[str, ...] = field(default=())


def _floats(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"arch.json extra holds a malformed mean/std {text!r}") from None


def _run_config(run_dir: Path) -> DataOptions:
    import yaml

    path = run_dir / "config.yaml"
    if not path.is_file():
        return DataOptions()
    try:
        cfg = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
    name = cfg.get("data") or "synthetic"
    level = int(cfg.get("level", 1)) if name == "synthetic" else 1
    return DataOptions(name, cfg.get("data_root"), int(cfg.get("seed", 0)), level)


def resolve_source(target: str, weights: str | None = None, resolution: int | None = None,
                   num_classes: int | None = None, width: float | None = None) -> ExportSource:
    """Build the network named by ``target`` (run directory, arch.json or baseline name).

    Args:
        weights: a state-dict file to load (a run directory's own weights.pt by default).
        resolution: input side in pixels (default: the spec's, or 32 for a baseline).
        num_classes, width: baselines only (an ArchSpec fixes both).

    Raises:
        ArchSpecError: a run directory without arch.json, or a malformed one.
        CheckpointError: a missing or corrupt weights file, or one that does not fit.
        UnknownNameError: ``target`` is neither a path nor a baseline.
        ConfigError: a baseline-only option given for an ArchSpec.
    """
    from edgenas.models import load_into, resolve_model_name
    from edgenas.models.baselines import build_baseline

    name = resolve_model_name(target)
    weights_path = Path(weights) if weights else None
    if weights_path is not None and not weights_path.is_file():
        raise CheckpointError(f"no weights file at {weights_path}")
    if name.kind == "searched":
        for option, value in (("--width", width), ("--num-classes", num_classes)):
            if value is not None:
                raise ConfigError(f"{option} applies to baselines only; {target} fixes it in its arch.json")
        if name.path.is_dir() and not (name.path / "arch.json").exists() and (name.path / "result.json").is_file():
            return _from_baseline_finetune(name.path, weights_path, resolution)
        return _from_arch(name.path, weights_path, resolution)
    res = resolution or DEFAULT_RESOLUTION
    classes = num_classes or DEFAULT_NUM_CLASSES
    model = build_baseline(target, num_classes=classes, width=width, resolution=res)
    notes = ()
    if weights_path is not None:
        load_into(model, weights_path)
    else:
        notes = (f"{target} has random weights (pass --weights for trained ones); accuracy figures are meaningless",)
    suffix = f"_{width:g}" if width is not None else ""
    return ExportSource(model, "baseline", f"{target}{suffix}", res, classes,
                        str(weights_path) if weights_path else "random", Path("exports") / f"{target}{suffix}",
                        warnings=notes)


def _from_baseline_finetune(run_dir: Path, weights: Path | None, resolution: int | None) -> ExportSource:
    """A baseline's fine-tuning directory (``edgenas finetune fast_cnn ...``): the baseline its ``result.json``
    names, with the directory's ``weights.pt``, classes and normalisation."""
    from bench.files import read_json
    from edgenas.models import load_into
    from edgenas.models.baselines import build_baseline

    result = read_json(run_dir / "result.json", "fine-tuning result")
    if result.get("kind") != "baseline" or not isinstance(result.get("classes"), list):
        raise ArchSpecError(f"no arch.json at {run_dir / 'arch.json'} (and {run_dir} is no baseline's fine-tuning)")
    weights = weights or run_dir / "weights.pt"
    if not weights.is_file():
        raise CheckpointError(f"no weights file at {weights}")
    res = resolution or int(result.get("resolution") or DEFAULT_RESOLUTION)
    labels = tuple(str(c) for c in result["classes"])
    model = build_baseline(str(result["model"]), num_classes=len(labels), resolution=res)
    load_into(model, weights)
    mean, std = result.get("mean"), result.get("std")
    return ExportSource(model, "baseline", str(result["model"]), res, len(labels), str(weights),
                        run_dir / "exports", mean=tuple(mean) if mean else None, std=tuple(std) if std else None,
                        labels=labels, data=_run_config(run_dir))


def _from_arch(path: Path, weights: Path | None, resolution: int | None) -> ExportSource:
    from edgenas.models import build, load_into
    from edgenas.space.registry import load_spec

    spec = load_spec(path)  # ArchSpecError for a run dir without arch.json
    if resolution is not None:
        spec = replace(spec, resolution=resolution)
    run_dir = path if path.is_dir() else None
    if weights is None and run_dir is not None and (run_dir / "weights.pt").is_file():
        weights = run_dir / "weights.pt"
    model = build(spec)
    notes: tuple[str, ...] = ()
    if weights is not None:
        load_into(model, weights)
        how = "preserved" if run_dir is not None and weights == run_dir / "weights.pt" else str(weights)
    else:
        how = "random"
        notes = (f"{path} has no weights.pt: exporting random weights; accuracy figures are meaningless",)
    if spec.num_classes == 0:
        raise ConfigError(f"{path} has no classifier (num_classes 0); nothing to export as logits")
    extra = dict(spec.extra)
    labels = tuple(extra["classes"].split(",")) if extra.get("classes") else ()
    base = run_dir if run_dir is not None else path.parent
    return ExportSource(
        model.deployable(), "arch", str(path), spec.resolution, spec.num_classes, how, base / "exports",
        arch_sha256=spec.sha256(), mean=_floats(extra.get("mean")), std=_floats(extra.get("std")),
        labels=labels if len(labels) == spec.num_classes else (),
        data=_run_config(run_dir) if run_dir is not None else DataOptions(), warnings=notes,
    )


@dataclass(frozen=True)
class ExportData:
    """Normalised float32 arrays for the exporters (``[N, 3, R, R]``) and the names of the data's classes."""

    calib: np.ndarray | None
    parity: np.ndarray
    parity_labels: np.ndarray | None
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]


def load_data(source: ExportSource, data: DataOptions, calib: int, parity_samples: int) -> ExportData:
    """Draw ``calib`` training images (0: none) and ``parity_samples`` held-out labelled images, seeded.

    Normalisation: the source's own mean/std when it has them, else the data set's
    usual ones (CIFAR-10's for cifar10, ImageNet's otherwise).

    Raises:
        ConfigError, DataError, UnknownNameError: from :func:`edgenas.data.load_dataset`.
    """
    from edgenas.data import (
        CIFAR10_MEAN,
        CIFAR10_STD,
        IMAGENET_MEAN,
        IMAGENET_STD,
        load_dataset,
        normalize_batch,
    )

    if source.mean is not None and source.std is not None:
        mean, std = source.mean, source.std
    elif data.name == "cifar10":
        mean, std = CIFAR10_MEAN, CIFAR10_STD
    else:
        mean, std = IMAGENET_MEAN, IMAGENET_STD

    def draw(holdout: str, size: int):
        return load_dataset(data.name, data.root, train=True, resolution=source.resolution, size=size,
                            level=data.level, seed=data.seed, holdout=holdout)

    calib_x = None
    if calib:
        calib_x = normalize_batch(draw("train", calib).images, mean, std).numpy()
    held = draw("val", parity_samples)
    parity_x = normalize_batch(held.images, mean, std).numpy()
    # Labels only mean something when the classifier was trained on these classes.
    labels = held.labels.numpy() if len(held.classes) == source.num_classes else None
    return ExportData(calib_x, parity_x, labels, tuple(held.classes), tuple(mean), tuple(std))
