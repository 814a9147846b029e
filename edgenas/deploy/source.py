"""What ``edgenas export`` feeds the exporters: the network, its input spec, calibration and held-out data.

A model source is a run directory (data options default to its
``config.yaml``): a search run exports its fine-tuning (the one ``finetune``
names, else the only one, else the best by hold-out accuracy, from
``RUN/finetune/``), or, when it has none, its preserved search weights with a
warning that the classifier was never trained; a fine-tuning directory
exports itself. Or a bare ``arch.json`` (random weights unless ``weights`` is
given), or a baseline name (random weights unless ``weights`` is given). Calibration images come from the training part of the
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

__all__ = ["DEFAULT_CALIB", "DEFAULT_PARITY_SAMPLES", "DataOptions", "ExportSource", "choose_finetune", "finetunings",
           "load_data", "resolve_source", "run_data"]


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
        fine_tuned: where the weights were fine-tuned (the manifest's ``source.fine_tuned``), None if not.
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
    fine_tuned: dict | None = None
    notes: tuple[str, ...] = field(default=())  # what was chosen, for the user (not warnings)


def _floats(text: str | None) -> tuple[float, ...] | None:
    if not text:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"arch.json extra holds a malformed mean/std {text!r}") from None


def run_data(run_dir: Path) -> DataOptions:
    """The data a run or fine-tuning directory was made with (its config.yaml); the synthetic set without one."""
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
                   num_classes: int | None = None, width: float | None = None,
                   finetune: str | None = None) -> ExportSource:
    """Build the network named by ``target`` (run directory, arch.json or baseline name).

    Args:
        weights: a state-dict file to load (a run directory's own weights.pt by default; given, no
            fine-tuning is chosen).
        finetune: a search run's fine-tuning to export (a directory name under ``RUN/finetune/``).
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
        if weights_path is None and _is_search_run(name.path):
            chosen, note = choose_finetune(name.path, finetune)
            if chosen is not None:
                source = _from_arch(chosen, None, resolution)
                return replace(source, name=str(name.path), default_out=name.path / "exports", notes=(note,))
            return replace(_from_arch(name.path, None, resolution), warnings=(note,))
        if finetune is not None:
            raise ConfigError(f"--finetune names a fine-tuning of a search run; {target} is not one")
        return _from_arch(name.path, weights_path, resolution)
    if finetune is not None:
        raise ConfigError(f"--finetune names a fine-tuning of a search run; {target} is a baseline")
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


def _is_search_run(path: Path) -> bool:
    """A search's run directory: its arch.json, summary.json and config.yaml, and no fine-tuning result."""
    return path.is_dir() and all((path / n).is_file() for n in ("arch.json", "summary.json", "config.yaml")) \
        and not (path / "result.json").exists()


def finetunings(run_dir: Path) -> dict[str, dict]:
    """The finished fine-tunings of a search run, ``{name: result.json}`` (``RUN/finetune/<name>/``, each with its
    arch.json and weights.pt), in name order; unreadable or unfinished ones are left out."""
    from bench.errors import BenchError
    from bench.files import read_json

    found = {}
    root = run_dir / "finetune"
    for d in sorted(root.iterdir()) if root.is_dir() else ():
        if all((d / n).is_file() for n in ("result.json", "arch.json", "weights.pt")):
            try:
                result = read_json(d / "result.json", "fine-tuning result")
            except BenchError:
                continue
            if isinstance(result, dict) and isinstance(result.get("final_acc"), (int, float)):
                found[d.name] = result
    return found


def choose_finetune(run_dir: Path, name: str | None) -> tuple[Path | None, str]:
    """(the fine-tuning directory to export, one line saying which and why), or (None, the warning that the
    run's classifier was never trained).

    Raises:
        ConfigError: ``name`` is not one of the run's finished fine-tunings.
    """
    found = finetunings(run_dir)
    if name is not None:
        if name not in found:
            known = ", ".join(found) or "none"
            raise ConfigError(f"{run_dir} has no finished fine-tuning {name!r} (finished: {known})")
        return run_dir / "finetune" / name, f"exporting the fine-tuning {name} ({found[name]['final_acc']:.2f}% on " \
                                             f"the hold-out)"
    if not found:
        return None, (f"{run_dir}'s classifier was never trained (no fine-tuning in {run_dir / 'finetune'}): its "
                      f"accuracy is chance; run edgenas finetune {run_dir} first")
    best = max(found, key=lambda n: (found[n]["final_acc"], n))
    why = "its only fine-tuning" if len(found) == 1 else f"the best of its {len(found)} fine-tunings on the hold-out"
    return run_dir / "finetune" / best, (f"exporting {best}, {why} ({found[best]['final_acc']:.2f}%, "
                                         f"{found[best].get('labels', '')}); --finetune NAME to choose")


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
                        labels=labels, data=run_data(run_dir), fine_tuned=_fine_tuned(run_dir))


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
    fine_tuned = _fine_tuned(run_dir) if run_dir is not None and how == "preserved" else None
    if fine_tuned is not None:
        how = "fine-tuned"  # a fine-tuning directory's own weights.pt
    return ExportSource(
        model.deployable(), "arch", str(path), spec.resolution, spec.num_classes, how, base / "exports",
        arch_sha256=spec.sha256(), mean=_floats(extra.get("mean")), std=_floats(extra.get("std")),
        labels=labels if len(labels) == spec.num_classes else (),
        data=run_data(run_dir) if run_dir is not None else DataOptions(), warnings=notes, fine_tuned=fine_tuned,
    )


def _fine_tuned(run_dir: Path) -> dict | None:
    """What a fine-tuning directory's result.json says of its training (None for any other directory)."""
    from bench.errors import BenchError
    from bench.files import read_json

    if not (run_dir / "result.json").is_file():
        return None
    try:
        result = read_json(run_dir / "result.json", "fine-tuning result")
    except BenchError:
        return None
    return {"dir": str(run_dir), "labels": result.get("labels"), "init": result.get("init"),
            "data": result.get("data"), "holdout_acc": result.get("final_acc"),
            "unlabelled": bool(result.get("unlabelled"))}


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
