"""Prefix trie of the real items' Semantic IDs as dense tensors, for vectorised constrained decoding.

Depth d holds one node per distinct d-code prefix (depth 0 = the root). children[d] is
(nodes at depth d, codebook size of column d): the child node reached by each code, or -1
where no item has that prefix. A beam step then masks its candidates with one gather
(`children[d][node]`), never a Python callback per beam, and the leaf reached after C codes
is exactly one item, so every finished beam is a real, distinct item.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class SidTrie:
    def __init__(self, codes: np.ndarray, sizes: Sequence[int]):
        """codes (N+1, C): row i = item i's column-local codes, row 0 = padding (ignored)."""
        body = np.asarray(codes, dtype=np.int64)[1:]
        n, c = body.shape
        self.n_levels = c
        self.node_of: list[np.ndarray] = [np.zeros(n + 1, dtype=np.int64)]  # depth 0: every item under root
        self.children: list[torch.Tensor] = []
        self.leaf_count: list[np.ndarray] = [np.array([n])]
        for d in range(1, c + 1):
            _, first, inv = np.unique(body[:, :d], axis=0, return_index=True, return_inverse=True)
            inv = inv.reshape(-1)
            node = np.r_[-1, inv]  # (N+1,) node of each item at depth d; padding has none
            child = np.full((len(self.leaf_count[-1]), sizes[d - 1]), -1, dtype=np.int64)
            child[self.node_of[-1][1:][first], body[first, d - 1]] = np.arange(len(first))
            self.children.append(torch.from_numpy(child))
            self.node_of.append(node)
            self.leaf_count.append(np.bincount(inv, minlength=len(first)))
        if (self.leaf_count[-1] != 1).any():
            raise ValueError("two items share one Semantic ID; the trie needs unique IDs")
        leaf_item = np.zeros(len(self.leaf_count[-1]), dtype=np.int64)
        leaf_item[self.node_of[-1][1:]] = np.arange(1, n + 1)
        self.leaf_item = torch.from_numpy(leaf_item)  # (N,) leaf node -> item id

    def to(self, device) -> SidTrie:
        self.children = [t.to(device) for t in self.children]
        self.leaf_item = self.leaf_item.to(device)
        return self

    def exhausted(self, histories: Sequence, depth: int) -> torch.Tensor:
        """(B, nodes at `depth`) bool: True where every item under the node is in that user's history.

        Masking these nodes at every step makes seen-item exclusion exact: no beam is ever
        spent on a prefix that can only end in an item the user already has.
        """
        n_nodes = len(self.leaf_count[depth])
        out = np.zeros((len(histories), n_nodes), dtype=bool)
        rows = [np.full(len(set(h)), b) for b, h in enumerate(histories)]
        items = [np.fromiter(set(h), dtype=np.int64) for h in histories]
        if rows and sum(len(r) for r in rows):
            row, item = np.concatenate(rows), np.concatenate(items)
            node = self.node_of[depth][item]
            key, counts = np.unique(row * n_nodes + node, return_counts=True)
            full = counts == self.leaf_count[depth][key % n_nodes]
            out[key[full] // n_nodes, key[full] % n_nodes] = True
        return torch.from_numpy(out)

    def item_of(self, codes: np.ndarray) -> np.ndarray:
        """(M, C) generated codes -> (M,) item ids, 0 where the code tuple is not a real item."""
        codes = np.asarray(codes, dtype=np.int64)
        node = np.zeros(len(codes), dtype=np.int64)
        ok = np.ones(len(codes), dtype=bool)
        for d, child in enumerate(self.children):
            ch = child.cpu().numpy()
            col = codes[:, d]
            ok &= (col >= 0) & (col < ch.shape[1])
            nxt = np.where(ok, ch[node, np.clip(col, 0, ch.shape[1] - 1)], -1)
            ok &= nxt >= 0
            node = np.where(ok, nxt, 0)
        return np.where(ok, self.leaf_item.cpu().numpy()[node], 0)
