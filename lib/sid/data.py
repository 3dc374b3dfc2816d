"""Token batches for the Semantic-ID generator: each user's item sequence as SID tokens."""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from lib.sid.vocab import SidVocab


def user_sequences(train: pd.DataFrame, max_len: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Per user with >= 2 training items: (users (U,), last max_len + 1 items of each, chronological)."""
    items = train["item"].to_numpy(np.int64)
    users = train["user"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, users[1:] != users[:-1], True])
    keep = [(users[a], items[max(a, z - max_len - 1):z]) for a, z in zip(bounds[:-1], bounds[1:], strict=True)
            if z - a >= 2]
    return np.array([u for u, _ in keep], dtype=np.int64), [s for _, s in keep]


class SidSequenceDataset(Dataset):
    """Training: one user's tokens -> (input, next-token target, target's code column or -1)."""

    def __init__(self, users: np.ndarray, seqs: list[np.ndarray], vocab: SidVocab):
        tokens = vocab.item_tokens()
        self.seqs = [vocab.sequence(s, u, tokens) for u, s in zip(users, seqs, strict=True)]
        self.prefix_len, self.n_levels = vocab.prefix_len, vocab.n_levels

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.seqs[i]

    def lengths(self) -> list[int]:
        return [len(s) - 1 for s in self.seqs]

    def collate(self, batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Right-padded (B, T) input, target and target column; padding targets get column -1."""
        t = max(len(s) for s in batch) - 1
        inp = torch.zeros(len(batch), t, dtype=torch.long)  # pad token is 0 (SidVocab)
        tgt = torch.zeros(len(batch), t, dtype=torch.long)
        col = torch.full((len(batch), t), -1, dtype=torch.long)
        for i, s in enumerate(batch):
            n = len(s) - 1
            inp[i, :n] = torch.from_numpy(s[:-1])
            tgt[i, :n] = torch.from_numpy(s[1:])
            j = np.arange(1, n + 1) - self.prefix_len  # token index within the item part
            col[i, :n] = torch.from_numpy(np.where(j >= 0, j % self.n_levels, -1))
        return inp, tgt, col
