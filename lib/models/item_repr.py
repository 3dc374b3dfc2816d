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
- sid_unigram:     sum over levels l of a learned embedding of the item's level-l code
                   (Singh et al. 2023, "Better Generalization with Semantic IDs"): items that
                   share codes share parameters, so a cold item is scored through its codes.
- sid_bigram:      sum over consecutive level pairs (l, l+1) of a learned embedding of the code
                   pair (their n-gram variant with n = 2); only pairs some item has get a row.
- sid_plus_id:     sid_unigram + a learned ID table.

With a long parallel code (m product-quantisation digits, lib/tokenizers/pq.py) sid_unigram is the
VQ-Rec item encoder (Hou et al., WWW 2023): one table per digit, the item vector pooled over its m
digit embeddings (`code_pool`: sum, or mean so the scale does not grow with m).

When `ItemFeatures.warm` is given (params `model.zero_cold_ids`), parameters that only items
without a training interaction use are fixed at zero: their ID rows in the fusion variants
(content_plus_id, sid_plus_id) and the code n-grams no warm item has (sid_*; mostly bigrams).
Such a row is never a training target, only a negative, so learning it would push the item down
and hide its content or shared codes (measured on Beauty: 0 cold-target hits with learned ID rows).

Cold-aware fusion (`id_dropout` p, the idea of DropoutNet, Volkovs et al. NeurIPS 2017): in training,
each call drops every item's ID row with probability p, one draw per item for the whole matrix, so an
item loses its ID part as input and as output of the same step. The content/code part must then score
items on its own, as it has to for a cold item. No rescaling: at inference a warm item has both parts.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lib.models.config import Representation

CONTENT_KINDS = ("content_init", "content", "content_plus_id")
CODE_KINDS = ("sid_unigram", "sid_bigram", "sid_plus_id")
ID_KINDS = ("id", "content_init", "content_plus_id", "sid_plus_id")  # with a per-item table
FUSION_KINDS = ("content_plus_id", "sid_plus_id")  # ID table added to a content/code part


@dataclass(frozen=True)
class ItemFeatures:
    """What a representation may know about the catalogue; row i = item id i, row 0 = padding."""

    content: np.ndarray | None = None  # (N+1, c) content embeddings
    codes: np.ndarray | None = None  # (N+1, L) semantic codes (collision level excluded), row 0 = -1
    warm: np.ndarray | None = None  # (N+1,) bool: the item has a training interaction
    # (N+1,) bool: the item is known at the training cut-off (lib/catalogue.py): the classes of the training
    # objective and the rows the content_init PCA is fit on; None = every item (leave-one-out, old tests)
    known: np.ndarray | None = None


def compact_ngrams(codes: np.ndarray, n: int) -> np.ndarray:
    """(N, L) codes -> (N, L-n+1) ids of each item's n-grams of consecutive levels, numbered
    per position 0..(distinct n-grams at that position - 1): only n-grams some item has get a row."""
    cols = []
    for start in range(codes.shape[1] - n + 1):
        _, ids = np.unique(codes[:, start:start + n], axis=0, return_inverse=True)
        cols.append(ids.reshape(-1))
    return np.stack(cols, axis=1)


def pca_init(content: np.ndarray, d: int, std: float, fit_rows: np.ndarray | None = None) -> np.ndarray:
    """(N+1, c) content -> (N+1, d) PCA projection, one global scale to `std`; row 0 = 0.

    A single scale (not per-column whitening) keeps the content's pairwise geometry. The mean, the
    components and the scale come from `fit_rows` ((N+1,) bool: the items known at the training cut-off;
    None = all): an item that does not exist yet must not shape the others' rows.

    Extra columns (d > c) are small random values, deterministic given torch's seed.
    """
    x = content[1:].astype(np.float64)
    fit = x if fit_rows is None else x[np.asarray(fit_rows, bool)[1:]]
    mean = fit.mean(0, keepdims=True)
    k = min(d, x.shape[1], fit.shape[0])
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    proj = (x - mean) @ vt[:k].T  # (N, k)
    proj = proj / (((fit - mean) @ vt[:k].T).std() + 1e-12) * std
    out = np.zeros((content.shape[0], d), dtype=np.float32)
    out[1:, :k] = proj
    if k < d:
        out[1:, k:] = torch.randn(x.shape[0], d - k).numpy() * std
    return out


def _check_rows(name: str, x: np.ndarray | None, kind: str, n_items: int) -> None:
    if x is None:
        raise ValueError(f"representation {kind!r} needs item {name}")
    if x.shape[0] != n_items + 1:
        raise ValueError(f"item {name} have {x.shape[0]} rows, expected n_items+1 = {n_items + 1}")


class ItemRepresentation(nn.Module):
    """Produces the item matrix E (N+1, d) for one representation variant."""

    def __init__(self, kind: Representation, n_items: int, d: int, features: ItemFeatures | None = None,
                 adapter_hidden: int = 256, init_std: float = 0.02, code_pool: str = "sum",
                 id_dropout: float = 0.0):
        super().__init__()
        if id_dropout and kind not in FUSION_KINDS:
            raise ValueError(f"model.id_dropout: only for the fusion representations {FUSION_KINDS}, not {kind!r}")
        self.kind = kind
        self.code_pool = code_pool
        self.id_dropout = id_dropout
        self.n_items = n_items
        features = features or ItemFeatures()
        content = features.content
        if kind in CONTENT_KINDS:
            _check_rows("content embeddings", content, kind, n_items)
        self.code_tables = None
        if kind in CODE_KINDS:
            _check_rows("codes", features.codes, kind, n_items)
            self._init_codes(features.codes, 2 if kind == "sid_bigram" else 1, d, init_std, features.warm)
        self.table = None
        if kind in ID_KINDS:
            self.table = nn.Embedding(n_items + 1, d, padding_idx=0)
            if kind == "content_init":
                w = torch.from_numpy(pca_init(content, d, init_std, features.known))
            else:
                w = torch.randn(n_items + 1, d) * init_std
            w[0] = 0
            self.table.weight.data.copy_(w)
        mask = None
        if kind in FUSION_KINDS and features.warm is not None:
            _check_rows("warm flags", features.warm, kind, n_items)
            mask = torch.as_tensor(features.warm, dtype=torch.float32).unsqueeze(1)
        self.register_buffer("id_mask", mask)  # persistent: the checkpoint says which rows were trained
        self.adapter = None
        if kind in ("content", "content_plus_id"):
            # Frozen buffer: the content itself is never trained, only the map to model space.
            self.register_buffer("content", torch.as_tensor(content, dtype=torch.float32), persistent=False)
            # The adapter runs over the whole catalogue every step: a linear map (adapter_hidden=0)
            # costs a fifth of a 256-wide MLP on 12k x 384 inputs.
            c = content.shape[1]
            self.adapter = (nn.Linear(c, d) if adapter_hidden == 0 else
                            nn.Sequential(nn.Linear(c, adapter_hidden), nn.GELU(), nn.Linear(adapter_hidden, d)))

    def _init_codes(self, codes: np.ndarray, n: int, d: int, init_std: float, warm: np.ndarray | None) -> None:
        sem = np.asarray(codes[1:], dtype=np.int64)
        if sem.ndim != 2 or (sem < 0).any() or sem.shape[1] < n:
            raise ValueError(f"item codes: expected (N+1, L >= {n}) non-negative codes below row 0, "
                             f"got shape {codes.shape}")
        grams = compact_ngrams(sem, n)  # (N, positions)
        rows = np.concatenate([np.zeros((1, grams.shape[1]), np.int64), grams])  # padding row: masked below
        self.register_buffer("code_ids", torch.as_tensor(rows))  # persistent: the checkpoint carries the codes
        mask = None
        if warm is not None:  # (N+1, positions): 1 where the item's n-gram is also some warm item's
            mask = np.zeros(rows.shape, dtype=np.float32)
            for j in range(grams.shape[1]):
                seen = np.zeros(grams[:, j].max() + 1, dtype=bool)
                seen[grams[np.asarray(warm[1:], bool), j]] = True
                mask[1:, j] = seen[grams[:, j]]
        self.register_buffer("code_mask", None if mask is None else torch.as_tensor(mask))
        self.code_tables = nn.ModuleList()
        for size in grams.max(0) + 1:
            table = nn.Embedding(int(size), d)
            nn.init.normal_(table.weight, std=init_std)
            self.code_tables.append(table)

    def forward(self) -> torch.Tensor:
        """The full item matrix (N+1, d); row 0 is exactly zero."""
        e = 0
        if self.adapter is not None:
            e = self.adapter(self.content)
        if self.code_tables is not None:
            parts = [t(self.code_ids[:, i]) for i, t in enumerate(self.code_tables)]
            if self.code_mask is not None:
                parts = [p * self.code_mask[:, i:i + 1] for i, p in enumerate(parts)]
            e = e + (sum(parts) / len(parts) if self.code_pool == "mean" else sum(parts))
        if not isinstance(e, int):
            e = e * (torch.arange(e.shape[0], device=e.device) > 0).unsqueeze(1)  # padding row = 0
        if self.table is not None:
            w = self.table.weight
            if self.id_mask is not None:
                w = w * self.id_mask
            if self.training and self.id_dropout:  # no draw at p = 0: the RNG stream stays the same
                keep = torch.rand(w.shape[0], 1, device=w.device) >= self.id_dropout  # (N+1, 1)
                w = w * keep
            e = e + w
        return e
