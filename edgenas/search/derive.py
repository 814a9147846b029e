"""From a trained supernet to a discrete network: derive the genotype, keep the weights.

Derivation follows DARTS (Liu et al. 2019): for every node keep the two
incoming edges whose strongest non-zero op has the largest weight, and on each
kept edge the argmax non-zero op. Weight preservation copies the supernet's
weights of every kept module (stem, cell pre-processing, kept ops, projector)
into the derived network, so fine-tuning starts from what the search learned.
"""

from __future__ import annotations

import torch

from edgenas.errors import CheckpointError
from edgenas.models import build
from edgenas.models.derived import DerivedNet
from edgenas.space.cells import edge_index
from edgenas.space.network import DARTSAutoSSL
from edgenas.space.spec import ArchSpec, CellGenotype, Edge


def derive_genotype(weights: torch.Tensor, op_names: tuple[str, ...], nodes: int,
                    edges_per_node: int = 2) -> CellGenotype:
    """Discretise one cell kind.

    Args:
        weights: ``[E, K]`` softmax(alpha) of the cell kind.
        op_names: the K candidate op names; ``zero`` is never kept.

    Returns:
        For each node, its ``min(edges_per_node, inputs)`` strongest edges, in input order.
    """
    w = weights.detach().cpu()
    keep = [k for k, n in enumerate(op_names) if n != "zero"]
    out = []
    for i in range(nodes):
        rows = [(j, w[edge_index(i, j)]) for j in range(i + 2)]
        scored = []
        for j, row in rows:
            k = max(keep, key=lambda k: float(row[k]))
            scored.append((float(row[k]), j, op_names[k]))
        best = sorted(scored, key=lambda t: (-t[0], t[1]))[:edges_per_node]
        out.append(tuple(Edge(op, j) for _, j, op in sorted(best, key=lambda t: t[1])))
    return CellGenotype(tuple(out))


def spec_from_supernet(net: DARTSAutoSSL, *, resolution: int, num_classes: int,
                       normal: CellGenotype | None = None, reduce: CellGenotype | None = None) -> ArchSpec:
    """The ArchSpec of the network derived from ``net`` (genotypes from its alphas unless given)."""
    w_normal, w_reduce = net.arch_weights()
    return ArchSpec(
        normal=normal or derive_genotype(w_normal, net.op_names, net.nodes),
        reduce=reduce or derive_genotype(w_reduce, net.op_names, net.nodes),
        channels=net.C,
        num_cells=net.num_cells,
        reduction_cells=net.reduction_cells,
        stem_channels=net.stem_multiplier * net.C,
        resolution=resolution,
        in_channels=net.in_channels,
        num_classes=num_classes,
        projector=net.projector_dims,
    )


def supernet_key(derived_key: str, spec: ArchSpec, op_names: tuple[str, ...]) -> str | None:
    """Map a derived network's state_dict key to the supernet key holding its weights.

    ``cells.<c>.edges.<e>.<rest>`` -> ``cells.<c>.edges.<e>.ops.<k>.<rest>`` where k is the op's
    index in the supernet; the classifier has no supernet counterpart (None).
    """
    parts = derived_key.split(".")
    if parts[0] == "classifier":
        return None
    if parts[0] == "cells" and parts[2] == "edges":
        c, e = int(parts[1]), int(parts[3])
        reduction = c in spec.reduction_cells
        genotype = spec.reduce if reduction else spec.normal
        op = _op_of_edge(genotype, e)
        return ".".join(parts[:4] + ["ops", str(op_names.index(op))] + parts[4:])
    return derived_key


def _op_of_edge(genotype: CellGenotype, flat: int) -> str:
    for i, node in enumerate(genotype.nodes):
        for e in node:
            if edge_index(i, e.input) == flat:
                return e.op
    raise KeyError(flat)


def transfer_weights(net: DARTSAutoSSL, spec: ArchSpec) -> DerivedNet:
    """Build ``spec``'s network and load the supernet's weights of every kept module.

    Batch-norm layers of ops are affine-free in the supernet (DARTS); in the derived
    net their weight/bias start at 1/0, which is the same function. Running statistics
    are copied, so in eval mode the derived network computes what the supernet computes
    with one-hot alphas on the kept ops.

    Raises:
        CheckpointError: a derived parameter has no counterpart of the same shape.
    """
    derived = build(spec)
    source = net.state_dict()
    target = derived.state_dict()
    for key, value in target.items():
        src = supernet_key(key, spec, net.op_names)
        if src is None:
            continue  # the classifier is new: the search is label-free
        if src not in source:
            if key.endswith((".weight", ".bias")) and _is_affine_bn(derived, key):
                continue  # affine-free BN in the supernet: identity scale/shift
            raise CheckpointError(f"weight transfer: supernet has no {src} for {key}")
        if source[src].shape != value.shape:
            raise CheckpointError(f"weight transfer: shape {tuple(source[src].shape)} != {tuple(value.shape)} for {key}")
        target[key] = source[src].detach().clone()
    derived.load_state_dict(target)
    return derived


def _is_affine_bn(model: torch.nn.Module, key: str) -> bool:
    module = model.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))


def one_hot_alphas(net: DARTSAutoSSL, spec: ArchSpec, magnitude: float = 1e4) -> None:
    """Set the supernet's alphas to (numerically) one-hot on ``spec``'s ops, ``zero`` elsewhere.

    Used to check weight preservation: the supernet then computes the derived network.
    """
    zero = net.op_names.index("zero")
    with torch.no_grad():
        for alpha, genotype in ((net.alpha_normal, spec.normal), (net.alpha_reduce, spec.reduce)):
            alpha.fill_(-magnitude)
            alpha[:, zero] = magnitude
            for i, node in enumerate(genotype.nodes):
                for e in node:
                    row = edge_index(i, e.input)
                    alpha[row].fill_(-magnitude)
                    alpha[row, net.op_names.index(e.op)] = magnitude
