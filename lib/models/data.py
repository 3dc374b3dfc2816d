"""Batches for sequential recommenders: right-padded to each batch's own longest sequence.

Padding a batch to its own maximum (not a global 50 or 200) and scoring only real
positions is what keeps full-softmax training cheap on Beauty (mean length ~9).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset


def training_sequences(train: pd.DataFrame, max_len: int) -> list[np.ndarray]:
    """Per user, the last max_len+1 items of the chronological training sequence (users with >= 2)."""
    items = train["item"].to_numpy(np.int64)
    users = train["user"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    seqs = [items[max(a, b - max_len - 1):b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [s for s in seqs if len(s) >= 2]


def pad(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad with 0 -> (B, L) ids and (B,) lengths."""
    lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.zeros(len(seqs), int(lengths.max()), dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.from_numpy(np.array(s, dtype=np.int64))
    return out, lengths


class NextItemDataset(Dataset):
    """Training: sequence s -> input s[:-1], target s[1:] (every position predicts the next item)."""

    def __init__(self, seqs: list[np.ndarray]):
        self.seqs = seqs

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.seqs[i]

    @staticmethod
    def collate(batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        inp, _ = pad([s[:-1] for s in batch])
        tgt, _ = pad([s[1:] for s in batch])
        return inp, tgt


class HistoryDataset(Dataset):
    """Inference: row i's history, truncated to the most recent max_len items."""

    def __init__(self, histories: list, max_len: int):
        self.histories = [np.asarray(h, dtype=np.int64)[-max_len:] for h in histories]

    def __len__(self) -> int:
        return len(self.histories)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray]:
        return i, self.histories[i]

    @staticmethod
    def collate(batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.tensor([i for i, _ in batch])
        seq, lengths = pad([h for _, h in batch])
        return idx, seq, lengths
