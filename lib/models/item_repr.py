"""How items enter a sequential recommender: ID table, content embeddings, or both.

Every variant yields one (N+1, d) matrix `E` (row 0 = padding = zeros) that is used both
as the input embedding and, tied, as the output layer: score(item i) = h . E[i]. So a
content variant changes the scores of *all* items, cold ones included.

- id:              learned table (the classic SASRec).
- content_init:    learned table initialised from the content embeddings, mapped to width
                   d by PCA (keeps the content geometry; cf. "ID embedding init from text").
- content:         frozen content embeddings through a trainable adapter (linear, or an MLP
                   when adapter_hidden > 0): no per-item
                   parameters, so cold items are as well represented as warm ones.
- content_plus_id: adapter(content) + a learned ID table (fusion by sum).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lib.models.config import Representation


def pca_init(content: np.ndarray, d: int, std: float) -> np.ndarray:
    """(N+1, c) content -> (N+1, d) PCA projection, one global scale to `std`; row 0 = 0.

    A single scale (not per-column whitening) keeps the content's pairwise geometry.

    Extra columns (d > c) are small random values, deterministic given torch's seed.
    """
    x = content[1:].astype(np.float64)
    x = x - x.mean(0, keepdims=True)
    k = min(d, x.shape[1], x.shape[0])
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:k].T  # (N, k)
    proj = proj / (proj.std() + 1e-12) * std
    out = np.zeros((content.shape[0], d), dtype=np.float32)
    out[1:, :k] = proj
    if k < d:
        out[1:, k:] = torch.randn(x.shape[0], d - k).numpy() * std
    return out


class ItemRepresentation(nn.Module):
    """Produces the item matrix E (N+1, d) for one representation variant."""

    def __init__(self, kind: Representation, n_items: int, d: int,
                 content: np.ndarray | None = None, adapter_hidden: int = 256, init_std: float = 0.02):
        super().__init__()
        self.kind = kind
        self.n_items = n_items
        needs_content = kind != "id"
        if needs_content:
            if content is None:
                raise ValueError(f"representation {kind!r} needs content embeddings")
            if content.shape[0] != n_items + 1:
                raise ValueError(f"content embeddings have {content.shape[0]} rows, expected n_items+1 = {n_items + 1}")
        self.table = None
        if kind in ("id", "content_init", "content_plus_id"):
            self.table = nn.Embedding(n_items + 1, d, padding_idx=0)
            if kind == "content_init":
                w = torch.from_numpy(pca_init(content, d, init_std))
            else:
                w = torch.randn(n_items + 1, d) * init_std
            w[0] = 0
            self.table.weight.data.copy_(w)
        self.adapter = None
        if kind in ("content", "content_plus_id"):
            # Frozen buffer: the content itself is never trained, only the map to model space.
            self.register_buffer("content", torch.as_tensor(content, dtype=torch.float32), persistent=False)
            # The adapter runs over the whole catalogue every step: a linear map (adapter_hidden=0)
            # costs a fifth of a 256-wide MLP on 12k x 384 inputs.
            c = content.shape[1]
            self.adapter = (nn.Linear(c, d) if adapter_hidden == 0 else
                            nn.Sequential(nn.Linear(c, adapter_hidden), nn.GELU(), nn.Linear(adapter_hidden, d)))

    def forward(self) -> torch.Tensor:
        """The full item matrix (N+1, d); row 0 is exactly zero."""
        e = 0
        if self.adapter is not None:
            e = self.adapter(self.content)
            e = e * (torch.arange(e.shape[0], device=e.device) > 0).unsqueeze(1)  # padding row = 0
        if self.table is not None:
            e = e + self.table.weight
        return e
