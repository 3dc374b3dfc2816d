"""Top-K recommendation lists from a model that scores every item: the one decoding for validation and test.

Any model with `score_last(seq, lengths) -> (B, N+1)`, `n_items` and `cfg.max_len` (SeqRec, RPG).
Lists are *unfiltered*: each user gets top_k + (number of distinct history items), so that
the evaluator can remove seen items (its explicit policy) and still have top_k left.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib.models.data import HistoryDataset


def list_lengths(histories: list, top_k: int, n_items: int) -> np.ndarray:
    """How many items to write per user: top_k plus room for the user's distinct seen items."""
    return np.minimum(np.array([top_k + len(set(h)) for h in histories]), n_items)


@torch.no_grad()
def top_items(scores: torch.Tensor, lengths: np.ndarray) -> list[np.ndarray]:
    """scores (B, N+1) with column 0 = -inf -> per row its best `lengths[i]` item ids, best first."""
    k = int(lengths.max())
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return [top[i, : lengths[i]] for i in range(len(top))]


@torch.no_grad()
def recommend(model: torch.nn.Module, rows: pd.DataFrame, top_k: int, batch_size: int = 256,
              device: torch.device | str = "cpu", progress: bool = True) -> pd.DataFrame:
    """Evaluation rows (user, history) -> DataFrame(user, items) of ranked item lists."""
    model.eval().to(device)
    histories = list(rows["history"])
    want = list_lengths(histories, top_k, model.n_items)
    ds = HistoryDataset(histories, model.cfg.max_len)
    out: list = [None] * len(ds)
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=HistoryDataset.collate)
    for idx, seq, lengths in tqdm(loader, desc="recommend", disable=not progress, mininterval=2.0):
        scores = model.score_last(seq.to(device), lengths.to(device))
        for i, items in zip(idx.tolist(), top_items(scores, want[idx.numpy()]), strict=True):
            out[i] = items.astype(np.int64)
    return pd.DataFrame({"user": rows["user"].to_numpy(), "items": out})
