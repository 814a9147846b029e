"""Latency tables of the stage space: measured blocks, and a fit for the widths between them.

A stage network's widths come out of a continuous scaling to the budgets
(:mod:`edgenas.space.stage_sampling`), so no table can hold every block up front.
A table of the space (``edgenas lut build --space stages-cnn``) measures the
blocks of random networks sampled at the budgets it records, and calibrates on
a few more. A network's blocks that the table lacks are measured into it when
the device is reachable (:class:`~edgenas.latency.evolved.GrowingTable`, as the
evolved space does); while hundreds of candidates are scaled to a latency
budget, :class:`StagePredictor` stands in for the blocks not measured: per kind
of block, a non-negative fit of the measured ``net_ms`` on the block's MACs and
activations. The network the search keeps is then checked on measured entries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bench.latency_table import LutError, _nnls
from edgenas.latency.keys import parse_key, stage_keys

__all__ = ["STAGE_KINDS", "StagePredictor", "key_work", "sample_framed", "stage_describe", "stage_plan",
           "stage_prior_table", "stage_search_table"]

#: the kinds of the stage space's keys
STAGE_KINDS = ("sstem", "sconv", "sres", "shead")


def key_work(key: str) -> tuple[float, float]:
    """(MACs, activation elements read and written) of one stage-space block, counted on its key."""
    k = parse_key(key)
    area = k.size * k.size
    if k.kind in ("sstem", "sconv"):
        kernel = 3 if k.kind == "sstem" else k.kernel
        out = k.c_out * area
        pooled = out // 4 if k.stride == 2 else 0
        return float(k.c_in * k.c_out * kernel * kernel * area), float(k.c_in * area + out + 2 * pooled)
    if k.kind == "sres":
        return float(2 * 9 * k.c_in * k.c_in * area), float(7 * k.c_in * area)  # 2 convs in/out, the add 3
    if k.kind == "shead":
        return float(k.c_in * k.c_out), float(k.c_in * area)
    raise LutError(f"{key!r} is not a key of the stage space")


def stage_describe(max_params: int, max_macs: int, resolution: int, num_classes: int) -> dict:
    """What a table of the stage space records of the space it covers (its networks' budgets and frame)."""
    return {"stages": {"max_params": int(max_params), "max_macs": int(max_macs), "resolution": int(resolution)},
            "num_classes": int(num_classes)}


def sample_framed(n: int, seed: int, describe: dict) -> list:
    """``n`` random stage networks (seeded) of the frame a table describes (:func:`stage_describe`)."""
    from edgenas.space.stage_sampling import sample_stage_specs

    frame = describe["stages"]
    return sample_stage_specs(n, seed, frame["max_params"], frame["max_macs"], frame["resolution"],
                              int(describe.get("num_classes") or 10))


def stage_plan(describe: dict, block_networks: int, calibration_networks: int, seed: int) -> tuple[list[str], list]:
    """(keys, calibration networks) of a table of the frame ``describe``: the blocks of ``block_networks``
    random networks (seed ``seed``) and of the calibration networks (seed ``seed + 10000``)."""
    calibration = sample_framed(calibration_networks, seed + 10_000, describe)
    blocks = sample_framed(block_networks, seed, describe)
    return sorted({k for spec in [*blocks, *calibration] for k in stage_keys(spec)}), calibration


class StagePredictor:
    """Predicted latency of stage networks from a table: its entries, and a per-kind fit for the rest.

    The fit is ``net_ms = a * MACs + b * activations + c`` per kind (non-negative, each row weighted by
    1/measured so that small blocks count as much as large ones), or over all kinds together for a kind
    with fewer than three entries. The network's sum then goes through the table's calibration, as
    :meth:`bench.latency_table.LatencyTable.predict` does.
    """

    def __init__(self, table) -> None:
        self.table = table
        entries = table.data["entries"]
        rows: dict[str, list[tuple[list[float], float]]] = {kind: [] for kind in STAGE_KINDS}
        for key, entry in entries.items():
            kind = key.split("/", 1)[0]
            y = float(entry["net_ms"])
            if kind in rows and y > 0:
                macs, acts = key_work(key)
                rows[kind].append(([macs, acts, 1.0], y))
        everything = [r for kind in STAGE_KINDS for r in rows[kind]]
        pooled = self._fit(everything)
        self.coef = {kind: self._fit(rows[kind]) if len(rows[kind]) >= 3 else None for kind in STAGE_KINDS}
        self.coef = {kind: c or pooled for kind, c in self.coef.items()}
        if any(c is None for c in self.coef.values()):
            raise LutError(f"latency table {table.source or table.label} holds too few measured blocks of the "
                           "stage space to predict others; rebuild it: edgenas lut build --space stages-cnn")

    @staticmethod
    def _fit(rows: Sequence[tuple[list[float], float]]) -> list[float] | None:
        if len(rows) < 3:
            return None
        scale = [max(abs(r[0][i]) for r in rows) or 1.0 for i in range(3)]  # columns of like size for the solve
        try:
            coef = _nnls([[x / (s * y) for x, s in zip(features, scale)] for features, y in rows], [1.0] * len(rows))
        except LutError:
            return None
        return [c / s for c, s in zip(coef, scale)]

    def net_ms(self, key: str) -> float:
        """The block's ``net_ms``: the table's entry, else the fit of its kind."""
        entry = self.table.data["entries"].get(key)
        if entry is not None:
            return float(entry["net_ms"])
        a, b, c = self.coef[key.split("/", 1)[0]]
        macs, acts = key_work(key)
        return a * macs + b * acts + c

    def predict(self, spec) -> float:
        """Predicted latency (ms) of the deployable network ``spec`` (its SSL projector left out)."""
        keys = stage_keys(dataclasses.replace(spec, projector=()))
        total = sum(self.net_ms(k) for k in keys)
        calibration = self.table.data.get("calibration") or {"a": 1.0, "b": 0.0, "c": 0.0}
        return calibration["a"] * total + calibration["b"] * len(keys) + calibration["c"]


def stage_prior_table(profile, keys: Sequence[str], describe: dict, runtime: str | None = None,
                      precision: str = "fp32", threads: int | None = None) -> dict:
    """An estimated table of the stage space for a device we cannot reach: ``keys`` from the analytic model."""
    from bench.latency_table import SCHEMA_VERSION
    from edgenas.latency.evolved import _prior_entry
    from edgenas.latency.prior import ESTIMATED_BY, call_overhead_ms, profile_fingerprint
    from edgenas.space.stages import STAGES_SPACE, STAGES_VERSION

    runtime = runtime or profile.runtime
    threads = threads or profile.threads or 1
    return {"schema": SCHEMA_VERSION, "device": profile.name, "runtime": runtime, "runtime_version": "estimated",
            "precision": precision, "threads": threads, "space": STAGES_SPACE, "space_version": STAGES_VERSION,
            **describe, "estimated": True, "estimated_by": ESTIMATED_BY,
            "replace_with": f"edgenas lut build --space {STAGES_SPACE} --device {profile.name} --host USER@HOST",
            "fingerprint": profile_fingerprint(profile),
            "entries": {k: _prior_entry(k, profile, precision, threads, runtime) for k in keys},
            "calibration": {"a": 1.0, "b": 0.0, "c": round(call_overhead_ms(profile, runtime), 6), "networks": 0,
                            "mape_pct": None}}


def stage_search_table(cfg, profile, console, num_classes: int = 10, lut: str | None = None):
    """The growing table a stage-space search with ``--latency-ms`` checks its network on.

    ``lut`` (a ``--latency-also`` table), else ``--lut``, else the target's table of the stage space on the
    table path (blocks it lacks are measured into it when the target is reachable), else, for a profile with
    the analytic model's figures, an estimated table of the blocks of networks at the search's budgets.

    Raises:
        ConfigError: no table and no analytic figures; LutError: a table of another space or device.
    """
    from edgenas.errors import ConfigError
    from edgenas.latency.evolved import open_growing_table
    from edgenas.space.stages import STAGES_SPACE

    def estimate() -> dict:
        describe = stage_describe(cfg.max_params, cfg.max_macs, cfg.resolution, num_classes)
        keys, _ = stage_plan(describe, 32, 12, cfg.seed)
        return stage_prior_table(profile, keys, describe)

    growing = open_growing_table(lut or cfg.lut, profile, console, STAGES_SPACE, stage_keys, estimate)
    where = profile.name if profile is not None else "DEVICE"
    build = (f"edgenas lut build --space {STAGES_SPACE} --device {where} --resolution {cfg.resolution} "
             f"--max-params {cfg.max_params} --max-macs {cfg.max_macs}")
    if growing is None:
        raise ConfigError(f"--latency-ms on the {STAGES_SPACE} space needs a latency table of it: {build} "
                          "(or --lut FILE)")
    frame = growing.table.data.get("stages") or {}
    table = growing.table.source or growing.table.label
    if frame and frame.get("resolution") != cfg.resolution:
        raise LutError(f"latency table {table} was calibrated on {frame.get('resolution')} px networks, not "
                       f"{cfg.resolution} px: {build}")
    if frame and (cfg.max_params > 2 * frame.get("max_params", 0) or cfg.max_macs > 2 * frame.get("max_macs", 0)):
        console.print(f"[yellow]latency table {table} covers networks of up to {frame.get('max_params'):,} params "
                      f"and {frame.get('max_macs'):,} MACs; this search's budgets are larger, so its predictions "
                      f"extrapolate until the blocks are measured. A table of this frame: {build}[/]")
    return growing
