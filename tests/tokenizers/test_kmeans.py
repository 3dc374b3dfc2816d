"""The shared torch k-means: determinism, degenerate inputs, nearest-centroid assignment."""
from __future__ import annotations

import torch

from lib.tokenizers.kmeans import kmeans, nearest
from tests.tokenizers.conftest import clusters


def test_kmeans_is_deterministic_and_handles_few_points():
    x = torch.as_tensor(clusters(n_clusters=4, per=10)[1:])
    a = kmeans(x, 4, torch.Generator().manual_seed(3))
    b = kmeans(x, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    few = kmeans(x[:3], 5, torch.Generator().manual_seed(0))  # k > n: runs, centroids are data points
    assert few.shape == (5, 16) and torch.isfinite(few).all()


def test_kmeans_finds_separated_clusters():
    x = torch.as_tensor(clusters(n_clusters=4, per=10)[1:])
    centroids = kmeans(x, 4, torch.Generator().manual_seed(0))
    labels = nearest(x, centroids).reshape(4, 10)  # row c = the members of cluster c
    assert all(len(row.unique()) == 1 for row in labels) and len(labels[:, 0].unique()) == 4


def test_nearest_is_the_argmin_of_euclidean_distance():
    g = torch.Generator().manual_seed(0)
    x, c = torch.randn(50, 6, generator=g), torch.randn(7, 6, generator=g)
    assert torch.equal(nearest(x, c), torch.cdist(x, c).argmin(-1))
