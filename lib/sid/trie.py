"""Prefix trie of the real items' Semantic IDs as dense tensors, for vectorised constrained decoding.

Depth d holds one node per distinct d-code prefix (depth 0 = the root). children[d] is
(nodes at depth d, codebook size of column d): the child node reached by each code, or -1
where no item has that prefix. A beam step then masks its candidates with one gather
(`children[d][node]`), never a Python callback per beam, and the leaf reached after C codes
is exactly one item, so every finished beam is a real, distinct item.

A trie holds one catalogue (lib/catalogue.py): the items known at a cut-off. Training's
trie-restricted softmax uses the training catalogue's trie, the search for a list the trie of that
list's catalogue, so an item unknown at the cut-off is neither a training choice nor ever generated,
while an item first seen after the training cut-off but before the list's is reachable through its codes.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


class SidTrie:
    def __init__(self, codes: np.ndarray, sizes: Sequence[int], items: np.ndarray | None = None):
        """codes (N+1, C): row i = item i's column-local codes, row 0 = padding (ignored);
        items (N+1,) bool: the catalogue the trie holds (row 0 ignored); None = every item 1..N.

        node_of[d] (N+1,) is each item's node at depth d, -1 for padding and for items outside the
        catalogue (at every depth, the root included).
        """
        codes = np.asarray(codes, dtype=np.int64)
        n, c = codes.shape[0] - 1, codes.shape[1]
        keep = np.ones(n + 1, dtype=bool) if items is None else np.asarray(items, dtype=bool).copy()
        if keep.shape != (n + 1,):
            raise ValueError(f"trie catalogue: {keep.shape[0]} flags for {n} items (+ padding row 0)")
        keep[0] = False
        ids = np.flatnonzero(keep)  # (n_cat,) the catalogue's item ids
        if not len(ids):
            raise ValueError("trie catalogue: no item")
        body = codes[ids]  # (n_cat, C)
        self.n_levels = c
        self.items = keep  # (N+1,) bool: the items a search over this trie can return
        root = np.full(n + 1, -1, dtype=np.int64)
        root[ids] = 0
        self.node_of: list[np.ndarray] = [root]  # depth 0: every catalogue item under the root
        self.children: list[torch.Tensor] = []
        self.leaf_count: list[np.ndarray] = [np.array([len(ids)])]
        for d in range(1, c + 1):
            _, first, inv = np.unique(body[:, :d], axis=0, return_index=True, return_inverse=True)
            inv = inv.reshape(-1)
            node = np.full(n + 1, -1, dtype=np.int64)  # (N+1,) node of each item at depth d; -1: none
            node[ids] = inv
            child = np.full((len(self.leaf_count[-1]), sizes[d - 1]), -1, dtype=np.int64)
            child[self.node_of[-1][ids[first]], body[first, d - 1]] = np.arange(len(first))
            self.children.append(torch.from_numpy(child))
            self.node_of.append(node)
            self.leaf_count.append(np.bincount(inv, minlength=len(first)))
        if (self.leaf_count[-1] != 1).any():
            raise ValueError("two items share one Semantic ID; the trie needs unique IDs")
        leaf_item = np.zeros(len(self.leaf_count[-1]), dtype=np.int64)
        leaf_item[self.node_of[-1][ids]] = ids
        self.leaf_item = torch.from_numpy(leaf_item)  # (n_cat,) leaf node -> item id

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
            row, node = row[node >= 0], node[node >= 0]  # a seen item outside the catalogue fills no node
            key, counts = np.unique(row * n_nodes + node, return_counts=True)
            full = counts == self.leaf_count[depth][key % n_nodes]
            out[key[full] // n_nodes, key[full] % n_nodes] = True
        return torch.from_numpy(out)

    def item_of(self, codes: np.ndarray) -> np.ndarray:
        """(M, C) generated codes -> (M,) item ids, 0 where the code tuple is no item of the catalogue."""
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
