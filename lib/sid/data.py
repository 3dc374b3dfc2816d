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
    """Training: one user's tokens -> (input, next-token target, target's code column or -1, prefix node).

    `node_of` (SidTrie.node_of: depth d -> (N+1,) trie node of each item's d-code prefix) gives,
    for each target code, the node whose children are the allowed codes (trie_softmax); without
    it the node tensor is all -1. Every item of a sequence is a target, so each must be in the
    trie's catalogue (the items known at the training cut-off): one outside it is an error.
    """

    def __init__(self, users: np.ndarray, seqs: list[np.ndarray], vocab: SidVocab,
                 node_of: list[np.ndarray] | None = None):
        tokens = vocab.item_tokens()
        self.seqs = [vocab.sequence(s, u, tokens) for u, s in zip(users, seqs, strict=True)]
        self.prefix_len, self.n_levels = vocab.prefix_len, vocab.n_levels
        pad = np.full(self.prefix_len, -1, dtype=np.int64)
        if node_of is None:
            self.nodes = [np.full(len(t), -1, dtype=np.int64) for t in self.seqs]
        else:
            depth = np.stack(node_of[: self.n_levels], axis=1)  # (N+1, C): node of the prefix before code j
            items = np.unique(np.concatenate(seqs)) if seqs else np.zeros(0, dtype=np.int64)
            outside = items[node_of[0][items] < 0]
            if len(outside):
                raise ValueError(f"{len(outside)} training item(s) outside the training catalogue (the trie), "
                                 f"e.g. {outside[:5].tolist()}: the split's catalogue and its training data disagree")
            self.nodes = [np.concatenate([pad, depth[s].reshape(-1)]) for s in seqs]

    def __len__(self) -> int:
        return len(self.seqs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.seqs[i], self.nodes[i]

    def lengths(self) -> list[int]:
        return [len(s) - 1 for s in self.seqs]

    def collate(self, batch: list[tuple[np.ndarray, np.ndarray]]):
        """Right-padded (B, T) input, target, target column and prefix node; padding targets get -1."""
        t = max(len(s) for s, _ in batch) - 1
        inp = torch.zeros(len(batch), t, dtype=torch.long)  # pad token is 0 (SidVocab)
        tgt = torch.zeros(len(batch), t, dtype=torch.long)
        col = torch.full((len(batch), t), -1, dtype=torch.long)
        node = torch.full((len(batch), t), -1, dtype=torch.long)
        for i, (s, nd) in enumerate(batch):
            n = len(s) - 1
            inp[i, :n] = torch.from_numpy(s[:-1])
            tgt[i, :n] = torch.from_numpy(s[1:])
            node[i, :n] = torch.from_numpy(nd[1:])
            j = np.arange(1, n + 1) - self.prefix_len  # token index within the item part
            col[i, :n] = torch.from_numpy(np.where(j >= 0, j % self.n_levels, -1))
        return inp, tgt, col, node
