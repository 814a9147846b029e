"""Latency tables of the cell space: keys of a network, measuring the blocks, calibration, validation.

* :func:`arch_keys` lists the blocks of an :class:`ArchSpec` (stem, each cell's
  two pre-processing convs, each kept op with its channels, stride and input
  size, the head) as table keys. It reads only the spec: no torch.
* :func:`build_table` exports every block a space can hold at every shape
  (plus an empty model per input shape, the cost of calling the runtime at
  all) as a small model, measures each on the device through its transport, then
  measures a handful of whole random networks and fits the calibration of
  :class:`bench.lut.LatencyTable`. Finished measurements are kept in
  ``<table>.partial.jsonl``, so an interrupted build resumes.
* :func:`sample_specs` draws random architectures of the space (the random-search
  baseline, and the held-out networks of :func:`validate_table`).

Key format: ``stem/c3-24/r32``, ``pre/conv1x1/c24-8/r32``, ``pre/fr/c24-16/r32``,
``op/ds_conv/c8/s1/r32``, ``head/c48-10/r8``, ``empty/c8/r32``; the evolved space's blocks are
``estem/c3-32/r32`` and ``eblock/c<in>-<hidden>-<out>/k<kernel>/s<stride>/r<size>``
(:mod:`edgenas.lut_evolved`).
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.space.spec import ArchSpec, CellGenotype, Edge

__all__ = ["Layout", "arch_keys", "build_table", "empty_keys", "find_table", "layout_keys", "measure_blocks",
           "measure_specs", "sample_specs", "table_entries", "validate_table"]

_FORMAT = {"ort": "onnx", "litert": "tflite", "openvino": "openvino"}


def _block_keys(spec: ArchSpec, genotype_of: Callable[[bool], CellGenotype | None]) -> list[str]:
    """Keys of the blocks of ``spec``; ``genotype_of(reduction)`` None = every op of every edge (all shapes)."""
    R = spec.resolution
    stem = spec.stem_channels
    keys = [f"stem/c{spec.in_channels}-{stem}/r{R}"]
    C_pp = C_p = stem
    size_pp = size = R
    reduction_prev = False
    for reduction, C in spec.cell_channels():
        keys.append(f"pre/{'fr' if reduction_prev else 'conv1x1'}/c{C_pp}-{C}/r{size_pp}")
        keys.append(f"pre/conv1x1/c{C_p}-{C}/r{size}")
        out = size // 2 if reduction else size
        genotype = genotype_of(reduction)
        for i, node in enumerate(genotype.nodes):
            for e in node:
                if e.op == "zero":
                    continue
                stride = 2 if reduction and e.input < 2 else 1
                keys.append(f"op/{e.op}/c{C}/s{stride}/r{size if e.input < 2 else out}")
        C_pp, C_p = C_p, spec.nodes * C
        size_pp, size = size, out
        reduction_prev = reduction
    keys.append(f"head/c{C_p}-{spec.num_classes}/r{size}")
    return keys


def arch_keys(spec) -> list[str]:
    """The table keys of every block of the network ``spec`` describes, in network order.

    Works for both spaces: an :class:`ArchSpec` (cells) and an ``EvolvedSpec``
    (``estem/c3-32/r32``, ``eblock/c32-96-32/k3/s2/r32``, ..., ``head/...``).
    """
    if getattr(spec, "space", None) == "evolved-cnn":
        size, keys = spec.resolution, [f"estem/c{spec.in_channels}-{spec.stem_channels}/r{spec.resolution}"]
        for c_in, b in zip(spec.inputs(), spec.blocks):
            keys.append(f"eblock/c{c_in}-{b.hidden}-{b.out}/k{b.kernel}/s{b.stride}/r{size}")
            size //= b.stride
        return keys + [f"head/c{spec.feature_dim}-{spec.num_classes}/r{size}"]
    return _block_keys(spec, lambda reduction: spec.reduce if reduction else spec.normal)


@dataclass(frozen=True)
class Layout:
    """The fixed frame of a network of the space: what the genotypes are placed into."""

    channels: int = 8
    cells: int = 3
    nodes: int = 3
    resolution: int = 32
    stem_multiplier: int = 3
    num_classes: int = 10

    def template(self, normal: CellGenotype, reduce: CellGenotype) -> ArchSpec:
        from edgenas.space.spec import reduction_positions

        return ArchSpec(normal=normal, reduce=reduce, channels=self.channels, num_cells=self.cells,
                        reduction_cells=reduction_positions(self.cells), stem_channels=self.stem_multiplier
                        * self.channels, resolution=self.resolution, num_classes=self.num_classes, projector=())


def layout_keys(layout: Layout, ops: Sequence[str]) -> list[str]:
    """Every key a network of ``layout`` can need, over the candidate ``ops`` on every edge (sorted, unique)."""
    ops = [op for op in ops if op != "zero"]
    if not ops:
        raise ConfigError("the space has no op but zero")
    # every (op, input) pair of every node: not a valid genotype (a node keeps two inputs), only a key generator
    full = CellGenotype.__new__(CellGenotype)
    object.__setattr__(full, "nodes", tuple(tuple(Edge(op, j) for j in range(i + 2) for op in ops)
                                            for i in range(layout.nodes)))
    simple = CellGenotype(tuple((Edge(ops[0], 0), Edge(ops[0], 1)) for _ in range(layout.nodes)))
    spec = layout.template(simple, simple)
    return sorted(set(_block_keys(spec, lambda reduction: full)))


def _parse(key: str) -> dict[str, Any]:
    parts = key.split("/")
    kind = parts[0]
    out: dict[str, Any] = {"kind": kind}
    for part in parts[1:]:
        if part[0] == "c" and part[1:].replace("-", "").isdigit():
            ch = [int(v) for v in part[1:].split("-")]
            out["c_in"], out["c_out"] = ch[0], ch[-1]
            if len(ch) == 3:
                out["hidden"] = ch[1]
        elif part[0] == "k" and part[1:].isdigit():
            out["kernel"] = int(part[1:])
        elif part[0] == "s" and part[1:].isdigit():
            out["stride"] = int(part[1:])
        elif part[0] == "r" and part[1:].isdigit():
            out["size"] = int(part[1:])
        else:
            out["name"] = part
    out.setdefault("stride", 1)
    return out


def key_module(key: str):
    """(module, input shape [1, C, R, R]) of a table key: the block alone, in eval mode, BN not yet folded."""
    import torch
    from torch import nn

    from edgenas.space.cells import FactorizedReduce
    from edgenas.space.network import make_stem
    from edgenas.space.ops import ConvBN, build_op

    k = _parse(key)
    shape = (1, k["c_in"], k["size"], k["size"])
    if k["kind"] == "stem":
        module = make_stem(k["c_in"], k["c_out"])
    elif k["kind"] == "pre":
        module = FactorizedReduce(k["c_in"], k["c_out"], True) if k["name"] == "fr" else \
            ConvBN(k["c_in"], k["c_out"], 1, 1, True)
    elif k["kind"] == "op":
        module = build_op(k["name"], k["c_in"], k["stride"], affine=True)
    elif k["kind"] == "estem":
        from edgenas.models.evolved import make_evolved_stem

        module = make_evolved_stem(k["c_in"], k["c_out"])
    elif k["kind"] == "eblock":
        from edgenas.models.evolved import EvoBlock
        from edgenas.space.evolved import BlockSpec

        module = EvoBlock(k["c_in"], BlockSpec(k["c_out"], k["hidden"], k["stride"], k.get("kernel", 3)))
    elif k["kind"] == "head":
        module = _Head(k["c_in"], k["c_out"])
    elif k["kind"] == "empty":
        module = _Empty()
    else:
        raise ConfigError(f"unknown table key {key!r}")
    torch.manual_seed(0)
    for m in module.modules():  # BN statistics of a trained net, so folding gives realistic weights
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    return module.eval(), shape


class _Head:  # built lazily below (torch imported only when measuring)
    def __new__(cls, c_in: int, classes: int):
        import torch
        from torch import nn

        class Head(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.classifier = nn.Linear(c_in, classes)

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return self.classifier(x.mean((2, 3)))

        return Head()


class _Empty:
    def __new__(cls):
        from torch import nn

        class Empty(nn.Module):
            """What calling the runtime costs: one trivial op on the input (an identity graph may be elided)."""

            def forward(self, x):
                return x + 1.0

        return Empty()


def _export_one(module, shape, fmt: str, precision: str, out_dir: Path, stem: str) -> Path:
    """Export one frozen module with the format's own exporter (no parity check: these are timing models)."""
    import numpy as np

    from exporters.base import get_exporter
    from exporters.freeze import freeze
    from exporters.spec import InputSpec

    C = shape[1]
    spec = InputSpec(shape=tuple(shape), mean=(0.0,) * C, std=(1.0,) * C)
    calib = np.random.default_rng(0).standard_normal((32, *shape[1:])).astype(np.float32) \
        if precision == "int8" else None
    files = get_exporter(fmt).export(freeze(module), spec, precision, out_dir, stem, calib=calib)
    return files[0]


def _measure(path: Path, run_job, threads: int, warmup: int, runs: int, timeout: float, runtime: str) -> dict:
    from bench.worker import make_job

    record = run_job(make_job(path, runtime=runtime, threads=threads, warmup=warmup, runs=runs), timeout)
    if "error" in record:
        raise ConfigError(f"measuring {path.name} failed on the device: {record['error']}")
    return record


def measure_specs(specs: Sequence[ArchSpec], run_job, runtime: str = "ort", precision: str = "fp32",
                  threads: int = 1, warmup: int = 30, runs: int = 200, timeout: float = 600,
                  progress: Callable[[], None] = lambda: None) -> list[float]:
    """Measured p50 (ms) of each whole network (random weights, BN folded) on the device."""
    from edgenas.models import build

    out = []
    with tempfile.TemporaryDirectory(prefix="edgenas-lut-") as tmp:
        for i, spec in enumerate(specs):
            shape = (1, spec.in_channels, spec.resolution, spec.resolution)
            path = _export_one(build(spec).eval(), shape, _FORMAT[runtime], precision, Path(tmp), f"net{i}")
            out.append(_measure(path, run_job, threads, warmup, runs, timeout, runtime)["p50_ms"])
            for f in Path(tmp).iterdir():
                f.unlink()
            progress()
    return out


def sample_specs(n: int, seed: int, layouts: Sequence[Layout], ops: Sequence[str]) -> list[ArchSpec]:
    """``n`` random architectures: a layout, then for each node two distinct inputs, each with a random op."""
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    choices = [op for op in ops if op != "zero"]
    if not choices:
        raise ConfigError("the space has no op but zero")
    rng = random.Random(seed)

    def genotype(nodes: int) -> CellGenotype:
        return CellGenotype(tuple(tuple(Edge(rng.choice(choices), j) for j in sorted(rng.sample(range(i + 2), 2)))
                                  for i in range(nodes)))

    specs = []
    for _ in range(n):
        layout = rng.choice(list(layouts))
        specs.append(layout.template(genotype(layout.nodes), genotype(layout.nodes)))
    return specs


def empty_keys(keys: Sequence[str]) -> list[str]:
    """The ``empty/...`` entry of each input shape among ``keys`` (the cost of calling the runtime at all)."""
    return sorted({f"empty/c{_parse(k)['c_in']}/r{_parse(k)['size']}" for k in keys})


def measure_blocks(keys: Sequence[str], done: dict[str, dict], run_job, runtime: str, precision: str, threads: int,
                   warmup: int, runs: int, timeout: float, partial: Path | None = None, settings: dict | None = None,
                   progress: Callable[[str], None] = lambda key: None) -> dict[str, dict]:
    """Measure each of ``keys`` not in ``done`` (each block exported alone, in a fresh worker); returns ``done``.

    Every measurement is appended to ``partial`` (when given) as it finishes, so an interruption loses none.
    """
    from bench.files import append_jsonl

    with tempfile.TemporaryDirectory(prefix="edgenas-lut-") as tmp:
        for key in [k for k in keys if k not in done]:
            progress(key)
            module, shape = key_module(key)
            artifact = _export_one(module, shape, _FORMAT[runtime], precision, Path(tmp), "block")
            record = _measure(artifact, run_job, threads, warmup, runs, timeout, runtime)
            row = {"key": key, "settings": settings, "p50_ms": record["p50_ms"], "mean_ms": record["mean_ms"],
                   "min_ms": record["min_ms"], "cv": record["cv"], "runtime_version": record["runtime_version"]}
            if partial is not None:
                append_jsonl(partial, row)
            done[key] = row
            for f in Path(tmp).iterdir():
                f.unlink()
    return done


def table_entries(keys: Sequence[str], done: dict[str, dict]) -> dict[str, dict]:
    """Entries of measured ``keys`` (and their empty models): ``net_ms`` is the p50 less the empty model's."""
    entries = {}
    for key in keys:
        k = _parse(key)
        empty = done[f"empty/c{k['c_in']}/r{k['size']}"]["p50_ms"]
        row = done[key]
        entries[key] = {"p50_ms": row["p50_ms"], "net_ms": round(max(row["p50_ms"] - empty, 0.0), 6),
                        "empty_ms": empty, "cv": row["cv"]}
    for key in empty_keys(keys):
        entries[key] = {"p50_ms": done[key]["p50_ms"], "net_ms": 0.0, "empty_ms": done[key]["p50_ms"],
                        "cv": done[key]["cv"]}
    return entries


def build_table(layouts: Sequence[Layout], ops: Sequence[str], run_job, device, fingerprint: dict,
                runtime: str = "ort", runtime_version: str = "", precision: str = "fp32", threads: int = 1,
                out: str | Path = "luts", calibration_networks: int = 12, seed: int = 0, warmup: int = 30,
                runs: int = 200, timeout: float = 600,
                progress: Callable[[str, int, int], None] = lambda what, done, total: None) -> Path:
    """Measure every block of ``layouts`` and a few whole networks on ``device``; write the table.

    Returns:
        The table's path, ``out/<device>-<runtime>-<precision>.json`` (written atomically).
    """
    from edgenas.space.spec import SPACE_NAME, SPACE_VERSION

    keys = sorted({k for layout in layouts for k in layout_keys(layout, ops)})
    specs = sample_specs(calibration_networks, seed + 10_000, layouts, ops)
    return _build(keys, specs, SPACE_NAME, SPACE_VERSION, {"ops": list(ops), "layouts": [
        dataclasses.asdict(layout) for layout in layouts]}, run_job, device, fingerprint, runtime, runtime_version,
        precision, threads, out, warmup, runs, timeout, progress)


def _build(keys, specs, space: str, space_version: int, describe: dict, run_job, device, fingerprint, runtime,
           runtime_version, precision, threads, out, warmup, runs, timeout, progress) -> Path:
    """Measure ``keys`` (resumable) and the calibration networks ``specs``; write the table of ``space``."""
    from bench.files import atomic_write_text, read_jsonl
    from bench.lut import SCHEMA_VERSION, LatencyTable, fit_calibration, table_name

    if runtime not in _FORMAT:
        raise ConfigError(f"unknown runtime {runtime!r} (known: {', '.join(_FORMAT)})")
    out = Path(out)
    path = out / table_name(device.name, runtime, precision) if space == "darts-light" else \
        out / table_name(f"{device.name}-{space}", runtime, precision)
    partial = path.with_name(path.name + ".partial.jsonl")
    out.mkdir(parents=True, exist_ok=True)
    settings = {"runtime": runtime, "precision": precision, "threads": threads, "device": device.name}
    done = {r["key"]: r for r in read_jsonl(partial) if r.get("settings") == settings}
    all_keys = [*empty_keys(keys), *keys]
    total = len(all_keys) + len(specs)
    count = [sum(k in done for k in all_keys)]

    def step(key: str) -> None:
        progress(key, count[0], total)
        count[0] += 1

    measure_blocks(all_keys, done, run_job, runtime, precision, threads, warmup, runs, timeout, partial, settings,
                   step)
    table = LatencyTable({
        "schema": SCHEMA_VERSION, "device": device.name, "runtime": runtime,
        "runtime_version": next((r["runtime_version"] for r in done.values()), runtime_version),
        "precision": precision, "threads": threads, "space": space, "space_version": space_version,
        **describe, "estimated": False,
        "fingerprint": fingerprint, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "entries": table_entries(keys, done), "calibration": None})
    progress("calibration networks", count[0], total)
    measured = measure_specs(specs, run_job, runtime, precision, threads, warmup, runs, timeout,
                             progress=lambda: progress("calibration networks", count[0], total))
    table.data["calibration"] = fit_calibration([table.raw_sum(arch_keys(s)) for s in specs], measured)
    atomic_write_text(path, table.to_json())
    partial.unlink(missing_ok=True)
    progress("done", total, total)
    return path


def validate_table(table, specs: Sequence[ArchSpec], run_job, warmup: int = 30, runs: int = 200,
                   timeout: float = 600, progress: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Predicted vs measured p50 of ``specs`` on the table's device.

    Returns:
        ``{"predicted_ms", "measured_ms", "mape_pct", "within_10pct", "spearman", "n"}``.
    """
    from bench.lut import spearman

    predicted = [table.predict(arch_keys(s)) for s in specs]
    measured = measure_specs(specs, run_job, table.runtime, table.precision, int(table.threads), warmup, runs,
                             timeout, progress)
    errors = [abs(p - m) / m for p, m in zip(predicted, measured)]
    return {"n": len(specs), "predicted_ms": predicted, "measured_ms": measured,
            "mape_pct": 100 * sum(errors) / len(errors),
            "within_10pct": sum(e <= 0.10 for e in errors) / len(errors),
            "spearman": spearman(predicted, measured) if len(specs) > 1 else None}


def find_table(device: str, runtime: str, precision: str = "fp32", dirs: Sequence[str | Path] | None = None
               ) -> Path | None:
    """The first ``<device>-<runtime>-<precision>.json`` on the table search path, or None.

    Search path (first match wins, so a measured table of the user's beats a shipped prior):
    each directory of ``$EDGENAS_LUTS_DIR`` (``os.pathsep``-separated), ``./luts`` (where ``edgenas lut
    build`` writes), ``~/.cache/edgenas/luts``, then the estimated prior tables shipped in ``devices/luts/``.

    Args:
        dirs: directories to search instead of that path (tests).
    """
    import os

    import devices
    from bench.lut import table_name

    if dirs is None:
        dirs = [p for p in os.environ.get("EDGENAS_LUTS_DIR", "").split(os.pathsep) if p]
        dirs += ["luts", Path("~/.cache/edgenas/luts").expanduser(), Path(devices.__file__).resolve().parent / "luts"]
    name = table_name(device, runtime, precision)
    for directory in dirs:
        path = Path(directory).expanduser() / name
        if path.is_file():
            return path
    return None
