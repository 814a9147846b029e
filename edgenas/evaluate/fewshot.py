"""Few-shot episodes on frozen features: prototypical and matching-network classifiers, 95% intervals.

An N-way K-shot episode draws N classes, K labelled *support* images and Q
*query* images of each; the queries are classified from the supports alone.

* Prototypical networks (Snell et al., NeurIPS 2017, arXiv:1703.05175): each
  class is the mean of its support features; a query goes to the nearest
  prototype in squared Euclidean distance.
* Matching networks (Vinyals et al., NeurIPS 2016, arXiv:1606.04080), without
  full context embeddings: a query's label distribution is the softmax over
  its cosine similarities to the supports, summed per class.

The mean accuracy over episodes comes with the 95% confidence interval of the
usual few-shot protocol, ``1.96 * std / sqrt(episodes)``.
"""

from __future__ import annotations

import numpy as np
import torch

from edgenas.errors import ConfigError

__all__ = ["METHODS", "episode", "matching_predict", "mean_ci95", "parse_shots", "prototypical_predict",
           "run_episodes"]

METHODS = ("prototypical", "matching")


def parse_shots(text: str) -> tuple[int, int]:
    """``"5w1s"`` (or ``"5-way-1-shot"``) -> (5, 1).

    Raises:
        ConfigError: another form, or non-positive numbers.
    """
    import re

    match = re.fullmatch(r"\s*(\d+)\s*(?:w|-?way)[-_ ]?(\d+)\s*(?:s|-?shot)\s*", str(text))
    if not match or int(match[1]) < 2 or int(match[2]) < 1:
        raise ConfigError(f"few-shot setting {text!r} is not N-way K-shot such as 5w1s (N >= 2, K >= 1)")
    return int(match[1]), int(match[2])


def episode(by_class: list[np.ndarray], n_way: int, k_shot: int, n_query: int, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions of one episode: (support [N*K], support labels, query [N*Q], query labels), labels 0..N-1.

    Args:
        by_class: positions of the items of each class.
    """
    classes = rng.choice(len(by_class), size=n_way, replace=False)
    support, query = [], []
    for members in (by_class[c] for c in classes):
        picked = rng.choice(members, size=k_shot + n_query, replace=False)
        support.append(picked[:k_shot])
        query.append(picked[k_shot:])
    return (np.concatenate(support), np.repeat(np.arange(n_way), k_shot),
            np.concatenate(query), np.repeat(np.arange(n_way), n_query))


def prototypical_predict(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor,
                         n_way: int) -> torch.Tensor:
    """Nearest class mean: ``support [S, F]`` labelled ``0..n_way-1``, ``query [Q, F]`` -> labels ``[Q]``."""
    prototypes = torch.zeros(n_way, support.shape[1], dtype=support.dtype).index_add_(0, support_y, support)
    prototypes /= torch.bincount(support_y, minlength=n_way).clamp_min(1)[:, None].to(support.dtype)
    return torch.cdist(query, prototypes).argmin(1)


def matching_predict(support: torch.Tensor, support_y: torch.Tensor, query: torch.Tensor,
                     n_way: int) -> torch.Tensor:
    """Cosine attention over the supports: ``[S, F]``, ``[S]``, ``[Q, F]`` -> labels ``[Q]``."""
    sim = torch.nn.functional.normalize(query, dim=1) @ torch.nn.functional.normalize(support, dim=1).T
    attention = sim.softmax(dim=1)  # [Q, S]
    votes = attention @ torch.nn.functional.one_hot(support_y, n_way).to(attention.dtype)
    return votes.argmax(1)


def mean_ci95(values) -> tuple[float, float]:
    """(mean, half-width of the 95% normal confidence interval ``1.96 * s / sqrt(n)``); 0 for one value."""
    a = np.asarray(values, dtype=np.float64)
    if a.size == 0:
        raise ValueError("mean_ci95 needs at least one value")
    half = 1.96 * a.std(ddof=1) / np.sqrt(a.size) if a.size > 1 else 0.0
    return float(a.mean()), float(half)


def run_episodes(features: torch.Tensor, labels: torch.Tensor, n_way: int, k_shot: int, n_query: int = 15,
                 episodes: int = 600, seed: int = 0, method: str = "prototypical") -> dict:
    """Mean accuracy (%) and its 95% interval over seeded episodes on ``features [N, F]``, ``labels [N]``.

    Raises:
        ConfigError: fewer classes than ``n_way``, a class with fewer than
            ``k_shot + n_query`` items (more shots than images), an unknown method.
    """
    if method not in METHODS:
        raise ConfigError(f"unknown few-shot method {method!r} (known: {', '.join(METHODS)})")
    if episodes < 1 or n_query < 1:
        raise ConfigError(f"episodes and queries must be >= 1, got {episodes} and {n_query}")
    labels_np = labels.cpu().numpy()
    by_class = [np.flatnonzero(labels_np == c) for c in np.unique(labels_np)]
    if len(by_class) < n_way:
        raise ConfigError(f"{n_way}-way episodes need {n_way} classes; the few-shot classes are {len(by_class)}")
    smallest = min(len(m) for m in by_class)
    if smallest < k_shot + n_query:
        raise ConfigError(f"{k_shot}-shot episodes with {n_query} queries need {k_shot + n_query} images per "
                          f"class; a few-shot class has only {smallest}")
    predict = prototypical_predict if method == "prototypical" else matching_predict
    features = features.detach().cpu().double()
    rng = np.random.default_rng(seed)
    accuracies = []
    for _ in range(episodes):
        s, sy, q, qy = episode(by_class, n_way, k_shot, n_query, rng)
        pred = predict(features[s], torch.from_numpy(sy), features[q], n_way)
        accuracies.append(100.0 * float((pred.numpy() == qy).mean()))
    mean, ci = mean_ci95(accuracies)
    return {"n_way": n_way, "k_shot": k_shot, "n_query": n_query, "episodes": episodes, "method": method,
            "seed": seed, "acc": round(mean, 3), "ci95": round(ci, 3)}
