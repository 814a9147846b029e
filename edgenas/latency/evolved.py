"""Latency tables of the evolved space: the blocks a grown network can reach, filled when first needed.

The cell space has a fixed set of blocks, all measured up front
(:func:`edgenas.latency.build.build_table`). A grown network's blocks depend on
the mutations it took, so :func:`edgenas.latency.build.build_evolved_table` measures the seed
network's blocks and those of every network one and two mutations away
(:func:`neighbourhood`), then calibrates on random grown networks
(:func:`sample_evolved`). Whatever a search reaches beyond that is added when
first needed (:class:`GrowingTable`): measured on the device when the device
is reachable, or computed by the analytic model of :mod:`edgenas.latency.prior`
for an estimated table. The table file grows with the search, and says which
entries were estimated.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from pathlib import Path

from edgenas.latency.keys import empty_keys, evolved_keys, parse_key
from edgenas.latency.measure import Timing, measure_blocks, table_entries
from edgenas.space.evolved import EVOLVED_SPACE, EVOLVED_VERSION, EvolvedSpec

__all__ = ["GrowingTable", "evolved_prior_table", "neighbourhood", "open_growing_table", "sample_evolved",
           "search_table"]

#: the search options that bound the evolved space (recorded in its tables)
LIMITS = ("seed_channels", "seed_blocks", "expansion", "max_blocks", "max_channels", "widen_factor", "resolution")


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


def describe(cfg, num_classes: int) -> dict:
    """What a table of the evolved space records of the space it covers."""
    return {"evolve": {k: getattr(cfg, k) for k in LIMITS}, "num_classes": num_classes}


def seed_of(cfg, num_classes: int) -> EvolvedSpec:
    """The deployable seed network of ``cfg`` (no SSL projector)."""
    from edgenas.evolve.proposals import seed_spec

    return dataclasses.replace(seed_spec(cfg, num_classes), projector=())


def _prior_entry(key: str, profile, precision: str, threads: int, runtime: str) -> dict:
    from edgenas.latency.prior import block_features, call_overhead_ms, estimate_ms

    k = parse_key(key)
    empty = call_overhead_ms(profile, runtime) + estimate_ms(block_features(str(k.empty), precision), profile,
                                                             precision, threads, runtime)
    net = 0.0 if k.kind == "empty" else estimate_ms(block_features(key, precision), profile, precision, threads,
                                                    runtime)
    return {"p50_ms": round(empty + net, 6), "net_ms": round(net, 6), "empty_ms": round(empty, 6),
            "estimated": True}


def evolved_prior_table(profile, cfg, runtime: str | None = None, precision: str = "fp32",
                        threads: int | None = None, num_classes: int = 10) -> dict:
    """An estimated table of the evolved space for a device we cannot reach; its entries are made when needed."""
    from bench.latency_table import SCHEMA_VERSION
    from edgenas.latency.prior import ESTIMATED_BY, call_overhead_ms, profile_fingerprint

    runtime = runtime or profile.runtime
    threads = threads or profile.threads or 1
    return {"schema": SCHEMA_VERSION, "device": profile.name, "runtime": runtime, "runtime_version": "estimated",
            "precision": precision, "threads": threads, "space": EVOLVED_SPACE, "space_version": EVOLVED_VERSION,
            **describe(cfg, num_classes), "estimated": True, "estimated_by": ESTIMATED_BY,
            "replace_with": f"edgenas lut build --space {EVOLVED_SPACE} --device {profile.name} --host USER@HOST",
            "fingerprint": profile_fingerprint(profile), "entries": {},
            "calibration": {"a": 1.0, "b": 0.0, "c": round(call_overhead_ms(profile, runtime), 6), "networks": 0,
                            "mape_pct": None}}


def table_classes(table) -> int:
    """The classifier size a table of the evolved space was built for (older tables: read off a head entry)."""
    if table.data.get("num_classes"):
        return int(table.data["num_classes"])
    heads = [parse_key(k).c_out for k in table.entries if k.startswith("head/")]
    return heads[0] if heads else 10


class GrowingTable:
    """A latency table (of the evolved or the stage space) that adds the entries a prediction needs.

    Args:
        table: the :class:`bench.latency_table.LatencyTable`.
        path: where to save it after it grew (None: in memory only).
        measure: ``keys -> {key: {p50_ms, ...}}`` measuring blocks on the device, for a
            measured table; None for an estimated one (entries from the analytic model).
        profile: the device profile (for estimated entries).
        keys_of: the keys of a network of the table's space (the evolved space's by default).
    """

    def __init__(self, table, path: Path | None, measure: Callable[[Sequence[str]], dict] | None, profile,
                 keys_of: Callable[[object], list[str]] = evolved_keys) -> None:
        self.table, self.path, self.measure, self.profile = table, path, measure, profile
        self.keys_of = keys_of
        self.added = 0

    def _fill(self, keys: Sequence[str]) -> None:
        entries = self.table.data["entries"]
        missing = [k for k in keys if k not in entries]
        if not missing:
            return
        if self.table.estimated or self.measure is None:
            if not self.table.estimated:
                from bench.latency_table import MissingEntryError

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

    def predict(self, spec) -> float:
        """Predicted latency (ms) of the deployable network ``spec`` (of the table's space)."""
        keys = self.keys_of(dataclasses.replace(spec, projector=()))
        self._fill(keys)
        return self.table.predict(keys)


def block_measurer(profile, table, console=None, timing: Timing = Timing()) -> Callable[[Sequence[str]], dict]:
    """``keys -> rows``: each block measured on ``profile``'s device, for a :class:`GrowingTable`."""
    def measure(keys: Sequence[str]) -> dict:
        from devices.transport import open_transport

        if console is not None:
            console.print(f"measuring {len(keys)} new block(s) on {profile.name} for the latency table")
        with open_transport(profile) as transport:
            return measure_blocks(keys, {}, transport.run_job, table.runtime, table.precision, int(table.threads),
                                  timing)
    return measure


def open_growing_table(lut: str | None, profile, console, space: str, keys_of: Callable[[object], list[str]],
                       estimate: Callable[[], dict]) -> GrowingTable | None:
    """The growing table of ``space`` a search for ``profile`` predicts with, or None without one.

    ``lut``, else the target's table of ``space`` on the table path (the blocks a network needs are
    measured into it when the target is reachable); for a target whose profile has the analytic
    model's figures and no such table, an estimated one (``estimate()`` gives its data).

    Raises:
        LutError: a table of another space or device.
    """
    from bench.latency_table import LatencyTable
    from edgenas.latency.files import find_table
    from edgenas.latency.target import reachable, warn_if_estimated

    path = lut
    if path is None and profile is not None:
        path = find_table(profile.name, profile.runtime, "fp32", space=space)
    if path is not None:
        table = LatencyTable.load(path)
        table.check(space=space, device=profile.name if profile is not None else None)
        measure = block_measurer(profile, table, console) if reachable(profile) else None
        growing = GrowingTable(table, Path(path), measure, profile, keys_of)
    elif profile is not None and getattr(profile, "clock_ghz", None) and profile.name != "local":
        growing = GrowingTable(LatencyTable(estimate(), f"estimated {profile.name} table"), None, None, profile,
                               keys_of)
    else:
        return None
    warn_if_estimated(growing.table, console)
    return growing


def search_table(cfg, profile, console, num_classes: int = 10) -> GrowingTable | None:
    """The growing table an evolve search of ``cfg`` for ``profile`` predicts with, or None without one
    (:func:`open_growing_table` of the evolved space).

    Raises:
        ConfigError: ``--latency-ms`` without any table; LutError: a table of another space or device.
    """
    from edgenas.errors import ConfigError

    growing = open_growing_table(cfg.lut, profile, console, EVOLVED_SPACE, evolved_keys,
                                 lambda: evolved_prior_table(profile, cfg, num_classes=num_classes))
    if growing is None and cfg.latency_ms is not None:
        raise ConfigError("--latency-ms with --strategy evolve needs a latency table of the evolved-cnn space: "
                          "edgenas lut build --space evolved-cnn --device ... (or --lut FILE)")
    return growing
