"""Few-shot episodes: the two classifiers against hand-computed answers, intervals, sampling, bad input."""

import numpy as np
import pytest
import torch

from edgenas.errors import ConfigError
from edgenas.evaluate.fewshot import (
    episode,
    matching_predict,
    mean_ci95,
    parse_shots,
    prototypical_predict,
    run_episodes,
)


def test_prototypical_by_hand():
    # class 0 support at (0, 0) and (2, 0): prototype (1, 0); class 1 at (0, 4): prototype (0, 4)
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[1.0, 1.9], [1.0, 2.1], [3.0, 0.0]])
    # distances^2 to (1,0) / (0,4): q0 3.61 / 5.41 -> 0; q1 4.41 / 4.61 -> 0; q2 4 / 25 -> 0
    assert prototypical_predict(support, labels, query, 2).tolist() == [0, 0, 0]
    assert prototypical_predict(support, labels, torch.tensor([[0.0, 2.6]]), 2).tolist() == [1]  # 7.76 vs 1.96


def test_matching_by_hand():
    # cosine similarity to supports along x (class 0) and y (class 1); softmax votes
    support = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 2.0]])
    labels = torch.tensor([0, 1, 1])
    # query (1, 0.9): cos 0.743 to x, 0.669 to both y supports -> votes e^.743 vs 2 e^.669: class 1 wins
    assert matching_predict(support, labels, torch.tensor([[1.0, 0.9]]), 2).tolist() == [1]
    # prototypes disagree: (1, 0) vs (0, 1.5) -> class 0 is nearer
    assert prototypical_predict(support, labels, torch.tensor([[1.0, 0.9]]), 2).tolist() == [0]


def test_mean_ci95_reference():
    mean, half = mean_ci95([50.0, 60.0, 70.0, 80.0])
    # std (ddof 1) of 50..80 = 12.9099; 1.96 * 12.9099 / 2 = 12.6517
    assert mean == 65.0 and half == pytest.approx(12.6517, abs=1e-4)
    assert mean_ci95([42.0]) == (42.0, 0.0)


def test_episode_is_disjoint_and_balanced():
    by_class = [np.arange(c * 20, (c + 1) * 20) for c in range(8)]
    s, sy, q, qy = episode(by_class, 5, 2, 3, np.random.default_rng(0))
    assert len(s) == 10 and len(q) == 15 and not set(s) & set(q)
    assert np.bincount(sy).tolist() == [2] * 5 and np.bincount(qy).tolist() == [3] * 5
    classes_of = [set(idx // 20 for idx in s[sy == k]) | set(idx // 20 for idx in q[qy == k]) for k in range(5)]
    assert all(len(c) == 1 for c in classes_of) and len(set.union(*classes_of)) == 5


def test_separable_features_score_perfectly_and_noise_scores_chance():
    rng = torch.Generator().manual_seed(0)
    labels = torch.arange(6).repeat_interleave(30)
    centres = torch.eye(6) * 10
    features = centres[labels] + 0.1 * torch.randn(180, 6, generator=rng)
    for method in ("prototypical", "matching"):
        r = run_episodes(features, labels, 5, 1, n_query=5, episodes=50, method=method)
        assert r["acc"] == 100.0 and r["ci95"] == 0.0
    noise = run_episodes(torch.randn(180, 6, generator=rng), labels, 5, 5, n_query=10, episodes=300)
    assert abs(noise["acc"] - 20.0) < 3 * noise["ci95"] + 1


def test_parse_shots():
    assert parse_shots("5w1s") == (5, 1) and parse_shots("10-way-5-shot") == (10, 5)
    with pytest.raises(ConfigError, match="not N-way K-shot"):
        parse_shots("five")


def test_bad_input():
    labels = torch.arange(4).repeat_interleave(10)
    features = torch.randn(40, 3)
    with pytest.raises(ConfigError, match="5-way episodes need 5 classes"):
        run_episodes(features, labels, 5, 1)
    with pytest.raises(ConfigError, match="need 20 images per class; a few-shot class has only 10"):
        run_episodes(features, labels, 3, 5, n_query=15)
    with pytest.raises(ConfigError, match="unknown few-shot method"):
        run_episodes(features, labels, 3, 1, n_query=2, method="relation")


def test_knn_by_hand():
    from edgenas.evaluate.knn import knn_accuracy

    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    test = torch.tensor([[1.0, 0.05], [0.1, 1.0], [0.6, 0.8]])
    # k=1: nearest by cosine -> 0, 1, and (0.6, 0.8): cos to e1 0.6, to (0.9, 0.1) 0.685, to e2 0.8 -> 1
    assert knn_accuracy(train, labels, test, torch.tensor([0, 1, 1]), k=1) == 100.0
    # k=3, temperature 1: (0.6, 0.8) -> class 0 weight e^.6 + e^.685 = 3.81 > e^.8 = 2.23 -> 0
    assert knn_accuracy(train, labels, test[2:], torch.tensor([0]), k=3, temperature=1.0) == 100.0
    with pytest.raises(ConfigError):
        knn_accuracy(train, labels, test, labels, k=4)
