"""Deterministic k-means in torch, shared by the RQ-VAE's codebook initialisation and residual k-means.

Lloyd's algorithm with k-means++ seeding (Arthur & Vassilvitskii 2007). Every random choice draws
from a CPU `torch.Generator`, so a seed gives the same centroids on any device; on one device and
thread count the result is bit-for-bit repeatable.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

KMEANS_ITERS = 50  # Lloyd iterations (fewer if the centroids stop moving)


def resolve_device(name: str) -> torch.device:
    """`auto` -> cuda if available else cpu; any other torch device string as given."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def kmeans(x: Tensor, k: int, generator: torch.Generator, iters: int = KMEANS_ITERS) -> Tensor:
    """Lloyd's k-means with k-means++ seeding: (n, d) -> (k, d) centroids, deterministic given `generator`.

    An emptied cluster is re-seeded at the point farthest from its centroid. With fewer distinct
    points than k some centroids coincide (dead-code reset can re-seed them during training).
    """
    n = len(x)
    centroids = x[torch.randint(n, (1,), generator=generator)]
    d2 = (x - centroids[0]).pow(2).sum(-1)  # (n,) squared distance to the nearest centroid so far
    for _ in range(1, k):
        w = d2.cpu().double()
        pick = torch.multinomial(w if w.sum() > 0 else torch.ones(n, dtype=torch.float64), 1, generator=generator)
        centroids = torch.cat([centroids, x[pick.to(x.device)]])
        d2 = torch.minimum(d2, (x - centroids[-1]).pow(2).sum(-1))
    for _ in range(iters):
        dist = torch.cdist(x, centroids)  # (n, k)
        assign = dist.argmin(-1)
        onehot = F.one_hot(assign, k).to(x.dtype)  # (n, k); a matmul, not index_add_ (atomic adds on GPU)
        counts = onehot.sum(0)
        new = (onehot.T @ x) / counts.clamp_min(1)[:, None]
        empty = counts == 0
        if empty.any():
            far = dist.gather(1, assign[:, None]).squeeze(1).argsort(descending=True)[: int(empty.sum())]
            new[empty] = x[far]
        if torch.equal(new, centroids):
            break
        centroids = new
    return centroids


def nearest(x: Tensor, centroids: Tensor) -> Tensor:
    """(n, d), (k, d) -> (n,) index of the nearest centroid (squared Euclidean; ties -> lowest index)."""
    dist = (x * x).sum(-1, keepdim=True) - 2 * x @ centroids.T + (centroids * centroids).sum(-1)  # (n, k)
    return dist.argmin(-1)
