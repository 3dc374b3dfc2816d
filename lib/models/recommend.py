"""Top-K recommendation lists from a model that scores every item: the one decoding for validation and test.

Any model with `score_last(seq, lengths) -> (B, N+1)`, `n_items` and `cfg.max_len` (SeqRec, RPG).
Lists are *unfiltered*: each user gets top_k + (number of distinct history items), so that
the evaluator can remove seen items (its explicit policy) and still have top_k left.

Cold shift (issue 18: one list for warm and cold targets). A fusion model (content + ID, codes + ID)
scores a cold item through its content part alone, while each warm item adds its learned ID part:
even with ID dropout in training (DropoutNet, Volkovs et al. 2017) cold items rank below warm ones.
`shifter` adds `b` standard deviations of the user's own scores (over the catalogue) to every cold
item's score, so one number means the same for every model and user; `choose_cold_shift` picks `b`
from a grid on validation NDCG@10 (the smallest on a tie; 0 = no shift), and the same `b` then
decodes validation and test. It is a rule that moves cold items into lists, so the evaluator's
random-cold control (lib/evaluate.py) states its lift over chance.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from lib import metrics
from lib.models.data import HistoryDataset

ScoreAdjust = Callable[[torch.Tensor], torch.Tensor]


def restrict(scores: torch.Tensor, candidates: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """scores (B, N+1), candidates (N+1,) bool -> scores with every non-candidate at -inf (None = all).

    The list's catalogue (lib/catalogue.py: items known at its cut-off, and for an ID-only model only
    items with a learned row) is applied to the scores, so a list is filled with real candidates.
    """
    if candidates is None:
        return scores
    keep = torch.as_tensor(np.asarray(candidates, dtype=bool)).to(scores.device)
    if keep.shape[0] != scores.shape[1]:
        raise ValueError(f"candidates: {keep.shape[0]} flags for {scores.shape[1]} score columns")
    return scores.masked_fill(~keep, float("-inf"))


def list_lengths(histories: list, top_k: int, n_items: int) -> np.ndarray:
    """How many items to write per user: top_k plus room for the user's distinct seen items
    (n_items: the number of candidates, so a list never holds a -inf item)."""
    return np.maximum(np.minimum(np.array([top_k + len(set(h)) for h in histories]), n_items), 0)


@torch.no_grad()
def top_items(scores: torch.Tensor, lengths: np.ndarray) -> list[np.ndarray]:
    """scores (B, N+1) with column 0 = -inf -> per row its best `lengths[i]` item ids, best first."""
    k = int(lengths.max())
    top = torch.topk(scores, k, dim=1).indices.cpu().numpy()
    return [top[i, : lengths[i]] for i in range(len(top))]


@torch.no_grad()
def recommend(model: torch.nn.Module, rows: pd.DataFrame, top_k: int, batch_size: int = 256,
              device: torch.device | str = "cpu", progress: bool = True,
              adjust: ScoreAdjust | None = None, candidates: np.ndarray | None = None) -> pd.DataFrame:
    """Evaluation rows (user, history) -> DataFrame(user, items) of ranked item lists.

    `adjust` maps each batch's scores (B, N+1) before ranking (`shifter`); None = as scored.
    `candidates` (N+1,) bool: the only items a list may hold (`restrict`); None = every item.
    """
    model.eval().to(device)
    histories = list(rows["history"])
    n_cand = model.n_items if candidates is None else int(np.count_nonzero(candidates))
    want = list_lengths(histories, top_k, n_cand)
    ds = HistoryDataset(histories, model.cfg.max_len)
    out: list = [None] * len(ds)
    loader = DataLoader(ds, batch_size=batch_size, collate_fn=HistoryDataset.collate)
    for idx, seq, lengths in tqdm(loader, desc="recommend", disable=not progress, mininterval=2.0):
        scores = model.score_last(seq.to(device), lengths.to(device))
        if adjust is not None:  # before the catalogue: the shift's sd is over real scores, not -inf
            scores = adjust(scores)
        scores = restrict(scores, candidates)
        for i, items in zip(idx.tolist(), top_items(scores, want[idx.numpy()]), strict=True):
            out[i] = items.astype(np.int64)
    return pd.DataFrame({"user": rows["user"].to_numpy(), "items": out})


def shifter(cold: np.ndarray, shift: float) -> ScoreAdjust:
    """cold (N+1,) bool (row 0 = padding, never cold) -> scores (B, N+1) -> scores with cold items raised by
    `shift` x each row's standard deviation over the real items (column 0 stays -inf)."""
    mask = torch.as_tensor(np.asarray(cold, dtype=bool))
    if mask[0]:
        raise ValueError("cold: row 0 is padding and cannot be cold")

    def adjust(scores: torch.Tensor) -> torch.Tensor:
        sd = scores[:, 1:].float().std(dim=1, keepdim=True)  # (B, 1)
        return scores + (shift * sd) * mask.to(scores.device, scores.dtype)  # (B, N+1)

    return adjust


@torch.no_grad()
def choose_cold_shift(model: torch.nn.Module, val: pd.DataFrame, cold: np.ndarray, grid: Sequence[float],
                      k: int = 10, batch_size: int = 256, device: torch.device | str = "cpu",
                      candidates: np.ndarray | None = None) -> tuple[float, dict[float, float]]:
    """Validation rows (user, history, target) -> (the shift of `grid` with the best NDCG@k, {shift: NDCG@k}).

    Scores each user once and ranks them under every shift, decoding like `recommend` (over `candidates`)
    and removing seen items like the evaluator (its default `filter_seen`).
    """
    if not grid:
        raise ValueError("cold shift grid: empty")
    model.eval().to(device)
    histories, targets = list(val["history"]), val["target"].to_numpy(np.int64)
    adjusts = {float(b): shifter(cold, float(b)) for b in grid}
    sums = dict.fromkeys(adjusts, 0.0)
    loader = DataLoader(HistoryDataset(histories, model.cfg.max_len), batch_size=batch_size,
                        collate_fn=HistoryDataset.collate)
    for idx, seq, lengths in loader:
        idx = idx.numpy()
        hist = [histories[i] for i in idx]
        want = list_lengths(hist, k, model.n_items if candidates is None else int(np.count_nonzero(candidates)))
        scores = model.score_last(seq.to(device), lengths.to(device))  # (B, N+1)
        for b, adjust in adjusts.items():
            ranked = top_items(restrict(adjust(scores), candidates), want)
            ranks = metrics.target_ranks(metrics.top_k(ranked, k, seen=hist), targets[idx])
            sums[b] += float(metrics.ndcg(ranks, k).sum())
    ndcg = {b: s / max(1, len(histories)) for b, s in sums.items()}
    best = max(sorted(ndcg), key=lambda b: ndcg[b])  # sorted + max keeps the smallest of tied shifts
    return best, ndcg
