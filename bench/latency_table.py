"""Latency tables: format, compatibility checks and the latency predictor (stdlib only).

A table (``luts/<device>-<runtime>-<precision>.json``, named by
:func:`edgenas.latency.files.table_file_name`) holds one entry per
building block of a search space at every shape it takes in a network (the
stem, each cell's pre-processing, each candidate op at each channel count,
stride and input size, the head), measured on one device with one runtime,
precision and thread count; plus a calibration fitted on whole networks
measured on the same device:

    latency(net) = a * sum(entry net_ms) + b * len(entries) + c

``net_ms`` is an entry's p50 minus the p50 of an empty model with the same
input (what running any model at all costs there); ``b`` puts back a per-block
cost and ``c`` what the blocks do not cover (additions, concatenations, the call
into the runtime). The keys of a network come from
:func:`edgenas.latency.spaces.arch_keys`; this module never imports torch or edgenas, so a
prediction runs wherever the table and the keys are.

Table fields: ``schema``, ``device``, ``runtime``, ``runtime_version``,
``precision``, ``threads``, ``space``, ``space_version``, ``estimated`` (true
for tables computed from an analytic device model rather than measured, with
``estimated_by`` and ``replace_with``: the command that measures the real one),
``fingerprint``, ``created``, ``freeze_revision`` (of the exporter that made the
measured blocks; absent: 1, before batch norms after pools were folded), ``entries``
(key -> {p50_ms, net_ms, ...}) and
``calibration`` ({a, b, c, networks, mape_pct, points}: see :func:`fit_calibration`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.errors import BenchError

__all__ = ["SCHEMA_VERSION", "LutError", "MissingEntryError", "LatencyTable", "fit_calibration", "spearman"]

SCHEMA_VERSION = 1

#: what must agree between a table and the search that uses it
MATCH_FIELDS = ("device", "runtime", "precision", "threads", "space", "space_version")


class LutError(BenchError):
    """A latency table is corrupt, or does not fit the request (the message names the field)."""


class MissingEntryError(LutError, KeyError):
    """A network needs an entry the table lacks (never counted as 0 ms)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class LatencyTable:
    """A loaded latency table; see the module docstring for its fields."""

    def __init__(self, data: dict[str, Any], source: str = "") -> None:
        self.data = data
        self.source = source
        where = f"{source}: " if source else ""
        missing = [f for f in (*MATCH_FIELDS, "entries") if f not in data]
        if missing:
            raise LutError(f"{where}not a latency table (missing {', '.join(missing)})")
        if data.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise LutError(f"{where}table schema {data['schema']} is newer than this edgenas ({SCHEMA_VERSION})")
        if not isinstance(data["entries"], dict):
            raise LutError(f"{where}'entries' must be an object")
        bad = [k for k, e in data["entries"].items()
               if not (isinstance(e, dict) and all(isinstance(e.get(f), (int, float)) for f in ("p50_ms", "net_ms")))]
        if bad:
            raise LutError(f"{where}entry {bad[0]!r} lacks a numeric p50_ms and net_ms")
        cal = data.get("calibration")
        if cal is not None and not (isinstance(cal, dict)
                                    and all(isinstance(cal.get(f), (int, float)) for f in ("a", "b", "c"))):
            raise LutError(f"{where}'calibration' must hold numbers a, b and c")

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        """Read a table file.

        Raises:
            LutError: the file is missing, not JSON, or not a latency table.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LutError(f"no latency table at {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LutError(f"{path} is not a readable latency table: {exc}") from None
        if not isinstance(data, dict):
            raise LutError(f"{path} is not a latency table (not a JSON object)")
        return cls(data, str(path))

    def __getattr__(self, name: str) -> Any:
        if name in ("data", "source"):
            raise AttributeError(name)
        try:
            return self.data[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def estimated(self) -> bool:
        return bool(self.data.get("estimated", False))

    @property
    def label(self) -> str:
        """``rpi4/litert/fp32/4 threads`` (+ ``estimated``) for messages and reports."""
        text = f"{self.device}/{self.runtime}/{self.precision}/{self.threads} thread(s)"
        return text + (" (estimated)" if self.estimated else "")

    def check(self, **expected: Any) -> None:
        """Refuse a table that does not fit: ``check(device="rpi4", runtime="litert", ...)``.

        Raises:
            LutError: naming the first field that differs, both values, and the table.
        """
        for name, want in expected.items():
            if want is None:
                continue
            have = self.data.get(name)
            if str(have) != str(want):
                raise LutError(f"latency table {self.source or self.label} is for {name} {have!r}, "
                               f"not {want!r}; build one with edgenas lut build")

    def raw_sum(self, keys: Iterable[str]) -> tuple[float, int]:
        """(sum of the entries' ``net_ms``, number of entries) of a network's keys.

        Raises:
            MissingEntryError: a key the table does not hold.
        """
        total, count = 0.0, 0
        entries = self.data["entries"]
        for key in keys:
            entry = entries.get(key)
            if entry is None:
                raise MissingEntryError(f"latency table {self.source or self.label} has no entry {key!r}; "
                                        "rebuild it for this space and resolution (edgenas lut build)")
            total += float(entry["net_ms"])
            count += 1
        return total, count

    def predict(self, keys: Iterable[str]) -> float:
        """Predicted latency (ms) of the network whose blocks are ``keys``.

        Without a calibration the sum of the entries' p50 is returned (an
        uncalibrated table overestimates: each entry pays the runtime call).
        """
        keys = list(keys)
        calibration = self.data.get("calibration")
        if not calibration:
            return sum(float(self._entry(k)["p50_ms"]) for k in keys)
        total, count = self.raw_sum(keys)
        return calibration["a"] * total + calibration["b"] * count + calibration["c"]

    def _entry(self, key: str) -> dict:
        entry = self.data["entries"].get(key)
        if entry is None:
            raise MissingEntryError(f"latency table {self.source or self.label} has no entry {key!r}")
        return entry

    def to_json(self) -> str:
        return json.dumps(self.data, indent=1, sort_keys=True)


def _solve(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Least squares via the normal equations (<= 3 unknowns; Gauss-Jordan with partial pivoting).

    Raises:
        LutError: the columns are (nearly) linearly dependent.
    """
    n = len(rows[0])
    ata = [[sum(r[i] * r[j] for r in rows) for j in range(n)] for i in range(n)]
    aty = [sum(r[i] * y for r, y in zip(rows, ys)) for i in range(n)]
    scale = max(abs(ata[i][i]) for i in range(n)) or 1.0
    m = [ata[i] + [aty[i]] for i in range(n)]
    for col in range(n):
        pivot = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[pivot][col]) < 1e-12 * scale:
            raise LutError("calibration is singular: measure networks that differ in size")
        m[col], m[pivot] = m[pivot], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [a - f * b for a, b in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


def _nnls(rows: list[list[float]], ys: list[float]) -> list[float]:
    """Non-negative least squares, exactly: the best feasible fit over every subset of free unknowns.

    With three unknowns there are seven subsets; the optimum of an NNLS problem
    is the unconstrained optimum on the subset of its non-zero coefficients, so
    the least residual among the feasible subset solutions is the answer.
    """
    n = len(rows[0])
    best: tuple[float, list[float]] | None = None
    for mask in range(1, 2**n):
        free = [i for i in range(n) if mask >> i & 1]
        try:
            coef = _solve([[r[i] for i in free] for r in rows], ys)
        except LutError:
            continue
        if any(c < 0 for c in coef):
            continue
        full = [0.0] * n
        for i, c in zip(free, coef):
            full[i] = c
        residual = sum((sum(f * x for f, x in zip(full, r)) - y) ** 2 for r, y in zip(rows, ys))
        if best is None or residual < best[0] - 1e-15:
            best = (residual, full)
    if best is None:
        raise LutError("calibration is singular: measure networks that differ in size")
    return best[1]


def fit_calibration(sums: list[tuple[float, int]], measured_ms: list[float]) -> dict[str, Any]:
    """Fit ``measured = a * sum + b * count + c`` on whole networks (relative, non-negative least squares).

    Rows are weighted by 1/measured so that small and large networks count
    alike (the goal is a relative error). The coefficients are constrained to
    be >= 0: each is a cost (per ms of blocks, per block, per call), and an
    unconstrained fit on a few noisy networks can turn one negative and then
    predict a negative latency for networks outside the fitting set. With
    ``net_ms >= 0`` every prediction is then >= 0. With networks that all have
    the same number of blocks, ``b`` is fixed at 0 (it could not be told from
    ``c``). With networks whose sums do not differ, or a fit that finds no slope
    (``a = 0``: noise larger than the networks' differences), ``a`` is 1 and
    only the offset ``c`` is fitted (or, were that negative, only ``a``).

    Returns:
        ``{"a", "b", "c", "networks", "mape_pct", "points"}``: MAPE on the fitting
        networks, and their ``[sum, count, measured_ms]`` so that a fit can be checked or redone.

    Raises:
        LutError: fewer than 2 networks, or non-positive measured latencies.
    """
    if len(sums) != len(measured_ms) or len(sums) < 2:
        raise LutError("calibration needs at least 2 measured networks")
    if any(y <= 0 for y in measured_ms):
        raise LutError("calibration needs positive measured latencies")
    def own_law() -> tuple[float, float, float]:
        """The sum's own law with one term fitted: ``sum + c`` (or ``a * sum`` were ``c`` negative)."""
        offset = sum(y - s for (s, _), y in zip(sums, measured_ms)) / len(sums)
        if offset >= 0:
            return 1.0, 0.0, offset
        return sum(y / s for (s, _), y in zip(sums, measured_ms) if s > 0) / max(1, sum(s > 0 for s, _ in sums)), \
            0.0, 0.0

    if len({s for s, _ in sums}) == 1:  # networks alike: nothing to fit a slope on
        a, b, c = own_law()
    else:
        with_count = len({n for _, n in sums}) > 1  # else b could not be told from c
        rows = [[s / y, n / y, 1 / y] if with_count else [s / y, 1 / y] for (s, n), y in zip(sums, measured_ms)]
        coef = _nnls(rows, [1.0] * len(rows))
        a, b, c = coef if with_count else (coef[0], 0.0, coef[1])
        if a <= 1e-9:
            # the networks' measured differences are noise to the fit: a zero slope would make every op cost
            # the same (no latency gradient for the search); keep the sum's own law instead
            a, b, c = own_law()
    errors = [abs(a * s + b * n + c - y) / y for (s, n), y in zip(sums, measured_ms)]
    return {"a": a, "b": b, "c": c, "networks": len(sums), "mape_pct": 100 * sum(errors) / len(errors),
            "points": [[s, n, y] for (s, n), y in zip(sums, measured_ms)]}


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: list[float], y: list[float]) -> float:
    """Spearman rank correlation (ties get their average rank)."""
    if len(x) != len(y) or len(x) < 2:
        raise ValueError("spearman needs two lists of the same length >= 2")
    rx, ry = _ranks(list(x)), _ranks(list(y))
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    var = (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5
    return cov / var if var else 0.0
