"""Latency tables of the evolved space: the blocks a grown network can reach, filled when first needed.

The cell space has a fixed set of blocks, all measured up front
(:func:`edgenas.lut.build_table`). A grown network's blocks depend on the
mutations it took, so :func:`build_evolved_table` measures the seed network's
blocks and those of every network one and two mutations away
(:func:`neighbourhood`), then calibrates on random grown networks
(:func:`sample_evolved`). Whatever a search reaches beyond that is added
when first needed (:class:`GrowingTable`): measured on the device when the
device is reachable, or computed by the analytic model of
:mod:`edgenas.lut_prior` for an estimated table. The table file grows with the
search, and says which entries were estimated.

Tables are named ``<device>-evolved-cnn-<runtime>-<precision>.json``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from edgenas.errors import ConfigError
from edgenas.lut import _parse, arch_keys, empty_keys
from edgenas.space.evolved import EVOLVED_SPACE, EVOLVED_VERSION, EvolvedSpec

__all__ = ["GrowingTable", "build_evolved_table", "evolved_prior_table", "evolved_table_name", "neighbourhood",
           "sample_evolved"]


def evolved_table_name(device: str, runtime: str, precision: str = "fp32") -> str:
    from bench.lut import table_name

    return table_name(f"{device}-{EVOLVED_SPACE}", runtime, precision)


def _children(spec: EvolvedSpec, cfg) -> list[EvolvedSpec]:
    from edgenas.evolve.importance import ImportanceTracker
    from edgenas.evolve.proposals import propose, spec_after

    return [spec_after(spec, m) for m, _ in propose(spec, ImportanceTracker(), cfg)]


def neighbourhood(seed: EvolvedSpec, cfg, depth: int = 2) -> list[EvolvedSpec]:
    """The seed and every network at most ``depth`` mutations from it (within the config's limits)."""
    level, seen = [seed], {seed}
    for _ in range(depth):
        nxt = []
        for spec in level:
            for child in _children(spec, cfg):
                if child not in seen:
                    seen.add(child)
                    nxt.append(child)
        level = nxt
    return sorted(seen, key=lambda s: s.sha256())


def sample_evolved(n: int, seed: int, start: EvolvedSpec, cfg, max_mutations: int = 5) -> list[EvolvedSpec]:
    """``n`` random grown networks: chains of 0..``max_mutations`` random mutations from ``start``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        spec = start
        for _ in range(rng.randint(0, max_mutations)):
            children = _children(spec, cfg)
            if not children:
                break
            spec = rng.choice(children)
        out.append(spec)
    return out


def _describe(cfg) -> dict:
    return {"evolve": {k: getattr(cfg, k) for k in ("seed_channels", "seed_blocks", "expansion", "max_blocks",
                                                     "max_channels", "widen_factor", "resolution")}}


def build_evolved_table(cfg, num_classes: int, run_job, device, fingerprint: dict, runtime: str = "ort",
                        precision: str = "fp32", threads: int = 1, out: str | Path = "luts",
                        calibration_networks: int = 12, depth: int = 2, warmup: int = 30, runs: int = 200,
                        timeout: float = 600, progress: Callable[[str, int, int], None] = lambda w, d, t: None
                        ) -> Path:
    """Measure the blocks within ``depth`` mutations of the seed network of ``cfg``, calibrate, write the table."""
    from edgenas.evolve.proposals import seed_spec
    from edgenas.lut import _build

    seed = dataclasses.replace(seed_spec(cfg, num_classes), projector=())
    specs = sample_evolved(calibration_networks, cfg.seed + 10_000, seed, cfg)
    keys = sorted({k for spec in [*neighbourhood(seed, cfg, depth), *specs] for k in arch_keys(spec)})
    return _build(keys, specs, EVOLVED_SPACE, EVOLVED_VERSION, _describe(cfg), run_job, device, fingerprint,
                  runtime, "", precision, threads, out, warmup, runs, timeout, progress)


def _prior_entry(key: str, profile, precision: str, threads: int, runtime: str) -> dict:
    from edgenas.lut_prior import block_features, call_overhead_ms, estimate_ms

    k = _parse(key)
    empty = call_overhead_ms(profile, runtime) + estimate_ms(
        block_features(f"empty/c{k['c_in']}/r{k['size']}", precision), profile, precision, threads, runtime)
    net = 0.0 if k["kind"] == "empty" else estimate_ms(block_features(key, precision), profile, precision,
                                                       threads, runtime)
    return {"p50_ms": round(empty + net, 6), "net_ms": round(net, 6), "empty_ms": round(empty, 6),
            "estimated": True}


def evolved_prior_table(profile, cfg, runtime: str | None = None, precision: str = "fp32",
                        threads: int | None = None) -> dict:
    """An estimated table of the evolved space for a device we cannot reach; its entries are made when needed."""
    from bench.lut import SCHEMA_VERSION
    from edgenas.lut_prior import ESTIMATED_BY, _fingerprint, call_overhead_ms

    runtime = runtime or profile.runtime
    threads = threads or profile.threads or 1
    return {"schema": SCHEMA_VERSION, "device": profile.name, "runtime": runtime, "runtime_version": "estimated",
            "precision": precision, "threads": threads, "space": EVOLVED_SPACE, "space_version": EVOLVED_VERSION,
            **_describe(cfg), "estimated": True, "estimated_by": ESTIMATED_BY,
            "replace_with": f"edgenas lut build --space {EVOLVED_SPACE} --device {profile.name} --host USER@HOST",
            "fingerprint": _fingerprint(profile), "entries": {},
            "calibration": {"a": 1.0, "b": 0.0, "c": round(call_overhead_ms(profile, runtime), 6), "networks": 0,
                            "mape_pct": None}}


class GrowingTable:
    """A latency table of the evolved space that adds the entries a prediction needs.

    Args:
        table: the :class:`bench.lut.LatencyTable`.
        path: where to save it after it grew (None: in memory only).
        measure: ``keys -> {key: {p50_ms, ...}}`` measuring blocks on the device, for a
            measured table; None for an estimated one (entries from the analytic model).
        profile: the device profile (for estimated entries).
    """

    def __init__(self, table, path: Path | None, measure: Callable[[Sequence[str]], dict] | None, profile) -> None:
        self.table, self.path, self.measure, self.profile = table, path, measure, profile
        self.added = 0

    def _fill(self, keys: Sequence[str]) -> None:
        from edgenas.lut import table_entries

        entries = self.table.data["entries"]
        missing = [k for k in keys if k not in entries]
        if not missing:
            return
        if self.table.estimated or self.measure is None:
            if not self.table.estimated:
                from bench.lut import MissingEntryError

                raise MissingEntryError(f"latency table {self.table.source or self.table.label} lacks {missing[0]!r} "
                                        "and its device cannot be reached to measure it")
            t = self.table
            for key in missing:
                entries[key] = _prior_entry(key, self.profile, t.precision, int(t.threads), t.runtime)
        else:
            need = [k for k in empty_keys(missing) if k not in entries] + missing
            done = {k: {"p50_ms": entries[k]["p50_ms"], "cv": entries[k].get("cv")} for k in empty_keys(missing)
                    if k in entries}
            done.update(self.measure(need))
            for key, entry in table_entries(missing, done).items():
                entries.setdefault(key, {**entry, "added_during_search": True})
        self.added += len(missing)
        if self.path is not None:
            from bench.files import atomic_write_text

            atomic_write_text(self.path, self.table.to_json())

    def predict(self, spec: EvolvedSpec) -> float:
        """Predicted latency (ms) of the deployable network ``spec``."""
        keys = arch_keys(dataclasses.replace(spec, projector=()))
        self._fill(keys)
        return self.table.predict(keys)


def check_space(table) -> None:
    if table.data.get("space") != EVOLVED_SPACE:
        raise ConfigError(f"latency table {table.source} is for space {table.data.get('space')!r}, not "
                          f"{EVOLVED_SPACE!r}; build one with edgenas lut build --space {EVOLVED_SPACE}")
