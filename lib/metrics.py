"""Per-user ranking metrics for single-target next-item prediction over the full catalogue.

Pure numpy kernels in the style of RePlay: they take recommendation lists and targets and
return one value per user, named flat (`hr@10`, `ndcg@10`, `mrr@10`), so means, slices and
paired tests are all computed from the same per-user numbers. Nothing here is sampled:
sampled metrics can rank models differently from full ranking (Krichene & Rendle, KDD 2020).

Conventions: ranks are 1-based; a target absent from a user's (filtered, cut) list has rank
inf and scores 0 everywhere, so a list that is too short is a miss, never an error. With one
relevant item the ideal DCG is 1, hence NDCG@K = 1 / log2(rank + 1) for rank <= K.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

PAD = 0  # never an item id (items are 1..N): fills lists shorter than K
METRICS = ("hr", "ndcg", "mrr")


def _flatten(lists: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """Ragged lists -> (row index, value), both (total,) int64, rows in order."""
    arrays = [np.asarray(x, dtype=np.int64) for x in lists]
    if not arrays:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    return np.repeat(np.arange(len(arrays)), lengths), np.concatenate(arrays)


def top_k(recs: Sequence, k: int, seen: Sequence | None = None) -> np.ndarray:
    """Ranked lists (U ragged, best first) -> (U, k) int64 top-k, PAD-filled when a list runs short.

    With `seen` (U ragged item lists) those items are removed from each user's list *before*
    cutting at k, so the items below move up; `seen=None` keeps the lists as given.
    """
    row, item = _flatten(recs)
    if seen is not None:
        srow, sitem = _flatten(seen)
        # one key per (user, item) pair makes the per-user membership test a single isin
        base = int(max(item.max(initial=0), sitem.max(initial=0))) + 1
        keep = ~np.isin(row * base + item, srow * base + sitem)
        row, item = row[keep], item[keep]
    n = len(recs)
    counts = np.bincount(row, minlength=n)
    pos = np.arange(len(item)) - np.repeat(np.cumsum(counts) - counts, counts)  # position within the row
    sel = pos < k
    out = np.full((n, k), PAD, dtype=np.int64)
    out[row[sel], pos[sel]] = item[sel]
    return out


def target_ranks(top: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """top (U, K) and targets (U,) -> (U,) float 1-based rank of the target, inf where absent."""
    hit = top == np.asarray(targets)[:, None]  # (U, K); at most one True per row
    return np.where(hit.any(axis=1), hit.argmax(axis=1) + 1.0, np.inf)


def hit_rate(ranks: np.ndarray, k: int) -> np.ndarray:
    """(U,) 1 if the target is in the top k."""
    return (ranks <= k).astype(np.float64)


def ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    """(U,) 1 / log2(rank + 1) within the top k; the ideal DCG of one relevant item is 1."""
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def mrr(ranks: np.ndarray, k: int) -> np.ndarray:
    """(U,) reciprocal rank within the top k."""
    return np.where(ranks <= k, 1.0 / ranks, 0.0)


def coverage(top: np.ndarray, k: int, n_items: int) -> float:
    """Distinct items in all users' top k (top: (U, >=k)) as a fraction of the catalogue size."""
    items = np.unique(top[:, :k])
    return float(np.count_nonzero(items != PAD)) / n_items


def per_user_metrics(ranks: np.ndarray, ks: Sequence[int]) -> pd.DataFrame:
    """(U,) ranks -> DataFrame (U rows) with columns hr@k..., ndcg@k..., mrr@k... for each k."""
    kernels = {"hr": hit_rate, "ndcg": ndcg, "mrr": mrr}
    return pd.DataFrame({f"{m}@{k}": kernels[m](ranks, k) for m in METRICS for k in ks})
