"""Analytic prior latency tables for devices we cannot reach: a roofline per block of the cell space.

A measured table (:func:`edgenas.latency.build.build_table`) needs the board. Until
someone measures one, :func:`prior_table` computes the same table from the
device profile's published figures (cores, clock, SIMD width, DRAM bandwidth)
and a small model of each block (:func:`block_features`)::

    compute_s = dense_MACs / (peak * COMPUTE_EFFICIENCY) + dw_MACs / (peak * DEPTHWISE_EFFICIENCY)
        peak  = clock * (simd_width_bits / 32) * fma_pipes * int8_factor, per core;
                threads t add (1 + (t - 1) * PARALLEL_EFFICIENCY) cores
    memory_s  = (weight + activation bytes) / (mem_bandwidth_gbs * MEMORY_EFFICIENCY)
    block_s   = max(compute_s, memory_s) + layers * LAYER_OVERHEAD_CYCLES[runtime] * overhead_scale / clock
                (+ layers * THREAD_SYNC_CYCLES * overhead_scale / clock when it runs on more than one thread)

The thread count a block runs on is the best one up to ``min(threads, cores)``:
runtimes keep small ops on one thread (ORT's cost-based ``TryParallelFor``,
XNNPACK's tile heuristics), so more threads are never predicted slower.

The tables are priors, not measurements: every one says ``"estimated": true``,
how it was made (``estimated_by``) and the command that replaces it with a
measured one (``replace_with``); :attr:`bench.latency_table.LatencyTable.label` and the
search show it. The model's own accuracy on a machine, built from its CPU's
figures: ``benchmarks/lut_prior_validation.py``.

``python -m edgenas.latency.prior --write`` regenerates the shipped tables in
``devices/luts/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import operator
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgenas.errors import ConfigError
from edgenas.latency.files import SHIPPED_DIR, table_file_name
from edgenas.latency.keys import Layout, empty_keys, layout_keys, parse_key

__all__ = ["BYTES_PER_ELEMENT", "SHIPPED_DEVICES", "SHIPPED_DIR", "CoreTraits", "block_features",
           "call_overhead_ms", "core_traits", "estimate_ms", "glue_features", "prior_table", "profile_fingerprint",
           "write_shipped"]

# ---------------------------------------------------------------------------------------------------------------
# Constants of the model. They are order-of-magnitude figures with the reasoning given, not fitted to any board;
# benchmarks/lut_prior_validation.py says how far they are from a measurement on this machine.

#: Fraction of the FMA peak a dense (1x1 or full) conv of these tiny networks sustains on one core. From XNNPACK's
#: README: MobileNet v1/v2 1.0 (569M / 300M MACs) run in 75 / 44 ms on a Raspberry Pi 4 with 4 threads, i.e.
#: 7.6 / 6.8 GMAC/s of a 24 GMAC/s peak (4 x 1.5 GHz x 4 fp32 FMA/cycle) = 0.28-0.32 with 4 threads, which with
#: PARALLEL_EFFICIENCY below is ~0.4 of one core's peak. (Tiny layers do worse; the per-layer overhead covers some.)
COMPUTE_EFFICIENCY = 0.4
#: A 3x3 depthwise conv does 9 MACs per output with no reuse across channels: its kernels are load-bound (about
#: one vector load per FMA in XNNPACK's and MLAS's dwconv micro-kernels), so about half the dense rate.
DEPTHWISE_EFFICIENCY = COMPUTE_EFFICIENCY / 2
#: Share of a core each extra thread adds. From XNNPACK's README, MobileNet v2 single vs multi-threaded on the
#: big cores of three Pixel phones: 49 -> 26 ms (2 cores), 53 -> 18 ms (4), 55 -> 28 ms (2): 0.88, 0.65, 0.96.
PARALLEL_EFFICIENCY = 0.75
#: Sustained share of the theoretical DRAM bandwidth (STREAM-like copy): 40-60% on LPDDR4/LPDDR5 boards (Pi 4
#: STREAM copy ~5 GB/s of 12.8; Jetson Nano ~12-14 GB/s of 25.6). Tensors of these networks often sit in L2,
#: which this ignores: the memory term errs slow.
MEMORY_EFFICIENCY = 0.5
#: Cost of dispatching one runtime node (kernel lookup, shape checks, output allocation), in cycles of a wide
#: out-of-order core. ORT's sequential executor: ~1 us per node on a 3 GHz x86 core; LiteRT with the XNNPACK
#: delegate runs the graph as one prepared XNNPACK subgraph (a function call per operator); OpenVINO CPU plugin
#: ~ORT. Estimates, not measurements.
LAYER_OVERHEAD_CYCLES = {"ort": 3_000, "litert": 1_000, "openvino": 3_000}
#: Cost of one timed call into the runtime from Python on an empty graph, in cycles: ORT ``session.run`` with
#: the feed prepared ~10 us on a 3 GHz core (input binding, output numpy array); LiteRT ``invoke()`` (input set
#: once) a few us; OpenVINO ``infer`` ~20 us. Estimates. This is the calibration's ``c`` of a prior table.
CALL_OVERHEAD_CYCLES = {"ort": 30_000, "litert": 6_000, "openvino": 60_000}
#: Fork-join of a thread pool per parallel op (wake the workers, barrier at the end): a few cross-core cache-line
#: hand-offs of ~100-200 ns each. Estimate.
THREAD_SYNC_CYCLES = 2_000
#: Bytes per tensor element.
BYTES_PER_ELEMENT = {"fp32": 4, "int8": 1}
#: int8 MACs per fp32 FMA slot: SDOT/UDOT (Armv8.2 dot product) and x86 VNNI do 4 int8 MACs per 32-bit lane;
#: without them (Cortex-A57/A72: ARMv8.0) kernels widen to 16 bits (SMLAL: 8 MACs per 128-bit instruction), 2x.
INT8_FACTOR_DOTPROD = 4.0
INT8_FACTOR_NO_DOTPROD = 2.0


@dataclass(frozen=True)
class CoreTraits:
    """Per-core facts the profiles do not hold.

    Attributes:
        fma_pipes: vector FMA instructions per cycle (fp32 FMAs/cycle = fma_pipes * simd_width_bits / 32).
        dotprod: int8 dot-product instructions (SDOT/UDOT, VNNI); None = decided from the profile's notes.
        overhead_scale: runtime overheads (branchy code) take this many times the cycles of a wide core (IPC).
    """

    fma_pipes: int = 2
    dotprod: bool | None = None
    overhead_scale: float = 1.0


#: Arm Software Optimization Guides: Cortex-A57/A72 issue one 128-bit FMLA per cycle, Cortex-A76/A78 two; A57/A72
#: are ARMv8.0 (no SDOT), A76/A78 ARMv8.2 with SDOT. overhead_scale: per-clock integer performance relative to a
#: Cortex-A76-class core (about that of a Skylake/Zen core): A72 ~0.6, A57 ~0.5 (published SPECint2006/GHz).
#: Anything else (x86 since Haswell/Zen: two FMA units) gets the defaults.
CORES = {
    "cortex-a57": CoreTraits(fma_pipes=1, dotprod=False, overhead_scale=2.0),
    "cortex-a72": CoreTraits(fma_pipes=1, dotprod=False, overhead_scale=1.7),
    "cortex-a76": CoreTraits(fma_pipes=2, dotprod=True, overhead_scale=1.0),
    "cortex-a78": CoreTraits(fma_pipes=2, dotprod=True, overhead_scale=1.0),
}

#: device profile -> runtime of its shipped prior table (the profile's default runtime)
SHIPPED_DEVICES = ("rpi4", "rpi5", "jetson-nano", "jetson-orin-nano")
#: the layouts of the shipped tables: the search's default frame, and the same wider and at 96 px
SHIPPED_LAYOUTS = (Layout(), Layout(channels=16), Layout(resolution=96))

ESTIMATED_BY = "analytic roofline (edgenas.latency.prior)"


def core_traits(profile) -> CoreTraits:
    """The :data:`CORES` entry whose name is in ``profile.cpu`` (case-insensitive), else the defaults.

    Without a table entry, dot product is read from the profile: notes saying "no SDOT"/"no dot-product" mean
    none; notes naming SDOT or dot-product, or a ``simd`` naming VNNI, mean present; else none.
    """
    cpu = (profile.cpu or "").lower()
    traits = next((t for name, t in CORES.items() if name in cpu), CoreTraits())
    if traits.dotprod is None:
        text = " ".join(profile.notes).lower()
        if "no sdot" in text or "no dot-product" in text or "no dot product" in text:
            dot = False
        else:
            dot = "sdot" in text or "dot-product" in text or "vnni" in (profile.simd or "").lower()
        traits = dataclasses.replace(traits, dotprod=dot)
    return traits


# ---------------------------------------------------------------------------------------------------------------
# Features of a block

_ACTIVATIONS = ("relu", "relu6", "hardtanh", "sigmoid", "clamp", "clip")


def _is_activation(node) -> bool:
    name = getattr(node.target, "__name__", str(node.target)).lower()
    return node.op in ("call_function", "call_method") and name in _ACTIVATIONS


@functools.cache
def block_features(key: str, precision: str = "fp32") -> dict[str, float]:
    """What one table key's block costs, counted on its module with batch norm folded (as exported).

    The block of :func:`edgenas.latency.blocks.key_module` is frozen (:func:`exporters.freeze.freeze`) and traced with its
    input shape; every conv, linear, pooling, reduction, element-wise, slice or concatenation node is a layer.
    An activation right after a conv or linear (its only user) is fused into it, as ORT, XNNPACK and OpenVINO
    do: no layer, no memory pass.

    Returns:
        ``macs`` (all multiply-accumulates, depthwise included), ``dw_macs`` (those of depthwise convs),
        ``weight_bytes``, ``act_bytes`` (each layer's input tensors read and output written), ``layers``;
        bytes at ``precision`` (4 per element for fp32, 1 for int8). Cached per (key, precision).

    Raises:
        ConfigError: an unknown key or precision.
    """
    import torch
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp

    from edgenas.latency.blocks import key_module
    from exporters.freeze import freeze

    if precision not in BYTES_PER_ELEMENT:
        raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(BYTES_PER_ELEMENT)})")
    module, shape = key_module(key)
    graph = freeze(module)
    with torch.no_grad():
        ShapeProp(graph).propagate(torch.zeros(shape))

    def numel(node) -> int:
        meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
        return int(torch.Size(meta.shape).numel()) if meta is not None and hasattr(meta, "shape") else 0

    def tensor_inputs(node) -> list:
        found = []
        torch.fx.node.map_arg((node.args, node.kwargs), found.append)
        return [n for n in found if numel(n)]

    linear = (nn.Conv2d, nn.Linear)
    macs = dw_macs = weights = acts = 0
    layers = 0
    for node in graph.graph.nodes:
        if node.op not in ("call_module", "call_function", "call_method") or not numel(node):
            continue
        if _is_activation(node):
            (src, *_) = tensor_inputs(node) or [None]
            if src is not None and src.op == "call_module" and isinstance(graph.get_submodule(src.target), linear) \
                    and len(src.users) == 1:
                continue  # fused into the conv/linear before it
        if node.op == "call_function" and node.target is operator.getitem and not tensor_inputs(node):
            continue
        if node.op == "call_module" and isinstance(graph.get_submodule(node.target), nn.Identity):
            continue  # exported as nothing
        layers += 1
        acts += numel(node) + sum(numel(n) for n in tensor_inputs(node))
        if node.op == "call_module":
            sub = graph.get_submodule(node.target)
            if isinstance(sub, nn.Conv2d):
                k = sub.kernel_size[0] * sub.kernel_size[1] * sub.in_channels // sub.groups
                macs += numel(node) * k
                if sub.groups > 1 and sub.groups == sub.in_channels:
                    dw_macs += numel(node) * k
            elif isinstance(sub, nn.Linear):
                macs += numel(node) * sub.in_features
            if isinstance(sub, linear):
                weights += sum(p.numel() for p in sub.parameters())
    size = BYTES_PER_ELEMENT[precision]
    return {"macs": float(macs), "dw_macs": float(dw_macs), "weight_bytes": float(weights * size),
            "act_bytes": float(acts * size), "layers": float(layers)}


def glue_features(key: str, nodes: int, precision: str = "fp32") -> dict[str, float]:
    """The share of a cell's glue an op edge carries: half its node's addition, 1/(2 * nodes) of the concatenation.

    A node sums its two edges (one add: two tensors read, one written) and the cell concatenates its ``nodes``
    node outputs (each read and written once); a measured table leaves these to its calibration, a prior puts
    them on the op entries. Zero features for keys other than ``op/...``.
    """
    k = parse_key(key)
    zero = {"macs": 0.0, "dw_macs": 0.0, "weight_bytes": 0.0, "act_bytes": 0.0, "layers": 0.0}
    if k.kind != "op":
        return zero
    out = k.c_in * (k.size // k.stride) ** 2 * BYTES_PER_ELEMENT[precision]
    add_share = 0.5 * 3 * out  # half of: two inputs read, one output written
    concat_share = out  # (read + write) of each node output, shared by its two edges
    return {**zero, "act_bytes": add_share + concat_share, "layers": 0.5 + 1 / (2 * nodes)}


# ---------------------------------------------------------------------------------------------------------------
# The roofline

def _need(profile, name: str):
    value = getattr(profile, name, None)
    if value is None:
        raise ConfigError(f"device {profile.name!r} has no {name}: the analytic latency model needs it "
                          f"(set it in a user copy of the profile; see edgenas devices list)")
    return value


def call_overhead_ms(profile, runtime: str | None = None) -> float:
    """One timed call into the runtime on an empty graph (ms): the prior table's calibration ``c``."""
    runtime = runtime or profile.runtime
    scale = core_traits(profile).overhead_scale
    return CALL_OVERHEAD_CYCLES[runtime] * scale / (_need(profile, "clock_ghz") * 1e9) * 1e3


def estimate_ms(features: dict[str, float], profile, precision: str = "fp32", threads: int | None = None,
                runtime: str | None = None) -> float:
    """Roofline latency (ms) of a block with ``features`` (see :func:`block_features`) on ``profile``'s CPU.

    Args:
        features: ``macs``, ``dw_macs``, ``weight_bytes``, ``act_bytes`` (at ``precision``), ``layers``.
        profile: a :class:`devices.profiles.DeviceProfile` with ``cores``, ``clock_ghz``, ``simd_width_bits``
            and ``mem_bandwidth_gbs``.
        precision: ``fp32`` or ``int8`` (int8 multiplies the MAC rate, see :data:`INT8_FACTOR_DOTPROD`).
        threads: inference threads (default the profile's); at most ``cores`` are used.
        runtime: ``ort``, ``litert`` or ``openvino`` (default the profile's): sets the per-layer overhead.

    Raises:
        ConfigError: a profile field the model needs is unset; an unknown precision or runtime.
    """
    runtime = runtime or profile.runtime
    if runtime not in LAYER_OVERHEAD_CYCLES:
        raise ConfigError(f"unknown runtime {runtime!r} (known: {', '.join(LAYER_OVERHEAD_CYCLES)})")
    if precision not in BYTES_PER_ELEMENT:
        raise ConfigError(f"unknown precision {precision!r} (known: {', '.join(BYTES_PER_ELEMENT)})")
    traits = core_traits(profile)
    clock_hz = _need(profile, "clock_ghz") * 1e9
    peak = clock_hz * _need(profile, "simd_width_bits") / 32 * traits.fma_pipes  # fp32 MAC/s of one core
    if precision == "int8":
        peak *= INT8_FACTOR_DOTPROD if traits.dotprod else INT8_FACTOR_NO_DOTPROD
    usable = max(1, min(threads or profile.threads or 1, _need(profile, "cores")))
    bandwidth = _need(profile, "mem_bandwidth_gbs") * 1e9 * MEMORY_EFFICIENCY
    memory_s = (features["weight_bytes"] + features["act_bytes"]) / bandwidth
    dense = max(features["macs"] - features["dw_macs"], 0.0)
    one_core_s = dense / (peak * COMPUTE_EFFICIENCY) + features["dw_macs"] / (peak * DEPTHWISE_EFFICIENCY)
    sync_s = features["layers"] * THREAD_SYNC_CYCLES * traits.overhead_scale / clock_hz
    best = min(max(one_core_s / (1 + (t - 1) * PARALLEL_EFFICIENCY), memory_s) + (sync_s if t > 1 else 0.0)
               for t in range(1, usable + 1))
    overhead_s = features["layers"] * LAYER_OVERHEAD_CYCLES[runtime] * traits.overhead_scale / clock_hz
    return (best + overhead_s) * 1e3


# ---------------------------------------------------------------------------------------------------------------
# Tables

def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a[k] + b.get(k, 0.0) for k in a}


def profile_fingerprint(profile) -> dict[str, Any]:
    """The fingerprint of an estimated table: the profile's published figures, not a probe of the device."""
    fields = ("arch", "cpu", "cores", "clock_ghz", "simd", "simd_width_bits", "memory_mb", "mem_bandwidth_gbs",
              "gpu", "os")
    return {"source": f"device profile {profile.name} ({profile.description})",
            **{name: getattr(profile, name) for name in fields}}


def prior_table(profile, layouts: Sequence[Layout], ops: Sequence[str], runtime: str | None = None,
                precision: str = "fp32", threads: int | None = None) -> dict[str, Any]:
    """A complete latency table (the :class:`bench.latency_table.LatencyTable` format) computed, not measured.

    Entries are those :func:`edgenas.latency.build.build_table` would measure (every key of ``layouts`` over ``ops``,
    plus one ``empty/...`` per input shape); ``net_ms`` is :func:`estimate_ms` of the block (op entries with
    their share of the cell's additions and concatenation, :func:`glue_features`), ``empty_ms`` the runtime
    call plus the empty model's one element-wise layer. The calibration is the identity plus the call
    overhead (``a=1, b=0, c=call_overhead_ms``), fitted on no network.

    Returns:
        The table as a dict, with ``"estimated": true``, ``estimated_by`` and ``replace_with``.

    Raises:
        ConfigError: a profile field the model needs is unset, an unknown runtime or precision.
    """
    from bench.latency_table import SCHEMA_VERSION
    from edgenas.space.spec import SPACE_NAME, SPACE_VERSION

    runtime = runtime or profile.runtime
    threads = threads or profile.threads or 1
    nodes = {layout.nodes for layout in layouts}
    if len(nodes) != 1:
        raise ConfigError(f"a prior table's layouts must share their node count, got {sorted(nodes)}")
    (nodes,) = nodes
    call_ms = call_overhead_ms(profile, runtime)

    def est(features):
        return estimate_ms(features, profile, precision, threads, runtime)

    def empty_ms(key):
        return call_ms + est(block_features(str(parse_key(key).empty), precision))

    keys = sorted({k for layout in layouts for k in layout_keys(layout, ops)})
    entries: dict[str, dict[str, float]] = {}
    for key in keys:
        net = est(_add(block_features(key, precision), glue_features(key, nodes, precision)))
        empty = empty_ms(key)
        entries[key] = {"p50_ms": round(empty + net, 6), "net_ms": round(net, 6), "empty_ms": round(empty, 6)}
    for key in empty_keys(keys):
        empty = empty_ms(key)
        entries[key] = {"p50_ms": round(empty, 6), "net_ms": 0.0, "empty_ms": round(empty, 6)}

    traits = core_traits(profile)
    replace_with = f"edgenas lut build --device {profile.name} --host USER@HOST"
    hardware = (f"Computed from the device profile, not measured: {profile.cores} cores x {profile.clock_ghz} GHz, "
                f"{profile.simd_width_bits}-bit SIMD x {traits.fma_pipes} FMA pipe(s), "
                f"{profile.mem_bandwidth_gbs} GB/s DRAM; {precision} on {threads} thread(s) with {runtime}.")
    glue = ("Op entries include their share of the cell's node additions and concatenation (a measured "
            "table's calibration covers those instead).")
    notes = [hardware, glue, f"Replace with a measured table: {replace_with}"]
    if profile.gpu:
        notes.append(f"Models the CPU only ({runtime} on the CPU); the GPU is not modelled: {profile.gpu}.")
    return {
        "schema": SCHEMA_VERSION, "device": profile.name, "runtime": runtime, "runtime_version": "estimated",
        "precision": precision, "threads": threads, "space": SPACE_NAME, "space_version": SPACE_VERSION,
        "ops": list(ops), "layouts": [dataclasses.asdict(layout) for layout in layouts],
        "estimated": True, "estimated_by": ESTIMATED_BY,
        "replace_with": replace_with,
        "notes": notes, "fingerprint": profile_fingerprint(profile),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "entries": entries,
        "calibration": {"a": 1.0, "b": 0.0, "c": round(call_ms, 6), "networks": 0, "mape_pct": None},
    }


def write_shipped(out: Path = SHIPPED_DIR, devices: Sequence[str] = SHIPPED_DEVICES,
                  layouts: Sequence[Layout] = SHIPPED_LAYOUTS, ops: Sequence[str] | None = None) -> list[Path]:
    """(Re)write the prior table of each device (its profile's runtime and threads, fp32) into ``out``."""
    from bench.files import atomic_write_text
    from bench.latency_table import LatencyTable
    from devices.profiles import load_profile
    from edgenas.space.ops import DEFAULT_OPS

    paths = []
    for name in devices:
        profile = load_profile(name)
        table = LatencyTable(prior_table(profile, layouts, ops or DEFAULT_OPS))
        path = Path(out) / table_file_name(profile.name, table.runtime, table.precision)
        atomic_write_text(path, table.to_json() + "\n")
        path.chmod(0o644)  # a data file of the package, not a private temp file
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgenas.latency.prior", description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help=f"write the shipped tables into {SHIPPED_DIR}")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR, help="directory to write into [%(default)s]")
    parser.add_argument("--device", action="append", default=None,
                        help=f"device profile (repeatable) [default: {', '.join(SHIPPED_DEVICES)}]")
    args = parser.parse_args(argv)
    if not args.write:
        parser.print_help()
        return 0
    for path in write_shipped(args.out, args.device or SHIPPED_DEVICES):
        data = json.loads(path.read_text())
        print(f"{path}: {len(data['entries'])} entries, {data['device']}/{data['runtime']}/{data['precision']}/"
              f"{data['threads']} threads (estimated), call overhead {data['calibration']['c']:.4f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
