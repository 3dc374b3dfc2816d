"""A sequential recommender = item representation + backbone + tied full-catalogue scoring."""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from lib.models.backbones import BACKBONES
from lib.models.config import ModelConfig, Representation
from lib.models.item_repr import ItemFeatures, ItemRepresentation
from lib.models.losses import full_softmax_ce, sampled_softmax_ce


class SeqRec(nn.Module):
    def __init__(self, backbone: str, representation: Representation, n_items: int, cfg: ModelConfig,
                 features: ItemFeatures | None = None):
        super().__init__()
        self.cfg = cfg
        self.n_items = n_items
        features = features or ItemFeatures()
        if not cfg.zero_cold_ids:
            features = dataclasses.replace(features, warm=None)
        self.items = ItemRepresentation(representation, n_items, cfg.d_model, features, cfg.adapter_hidden,
                                        code_pool=cfg.code_pool, id_dropout=cfg.id_dropout)
        self.backbone = BACKBONES[backbone](cfg)

    def hidden(self, seq: torch.Tensor, item_matrix: torch.Tensor) -> torch.Tensor:
        """seq (B, L) right-padded item ids -> hidden states (B, L, d)."""
        return self.backbone(F.embedding(seq, item_matrix))

    def loss(self, inp: torch.Tensor, tgt: torch.Tensor, kind: str = "ce", ce_chunk: int = 128,
             negatives: int = 0, ce_dtype: str = "float32") -> torch.Tensor:
        """Next-item loss at real positions only (tgt > 0), *summed* over positions: inp, tgt (B, L).

        Summed, not averaged per batch: with length-sorted batches a per-batch mean would give a
        position in a batch of short sequences far more weight than one in a batch of long ones.
        The trainer divides by a constant (mean positions per batch) instead.
        """
        e = self.items()  # (N+1, d)
        mask = tgt > 0
        h = self.hidden(inp, e)[mask]  # (M, d): never materialise logits for padding
        y = tgt[mask]  # (M,)
        if kind == "ce":  # full softmax over the catalogue (SASRec+, Klenitskiy & Vasilev 2023)
            return full_softmax_ce(h, e[1:], y - 1, ce_chunk, getattr(torch, ce_dtype))  # padding is not a class
        if kind == "sampled":  # softmax over the target and `negatives` uniformly sampled items
            return sampled_softmax_ce(h, e[1:], y - 1, negatives)
        # Original SASRec: binary cross-entropy with one uniformly sampled negative per position.
        neg = torch.randint(1, self.n_items + 1, y.shape, device=y.device)
        pos_s = (h * e[y]).sum(-1)
        neg_s = (h * e[neg]).sum(-1)
        return F.binary_cross_entropy_with_logits(
            torch.cat([pos_s, neg_s]), torch.cat([torch.ones_like(pos_s), torch.zeros_like(neg_s)]), reduction="sum")

    @torch.no_grad()
    def score_last(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores (B, N+1) of every item after the last real position; column 0 = -inf."""
        e = self.items()
        h = self.hidden(seq, e)  # (B, L, d)
        last = h[torch.arange(seq.shape[0], device=seq.device), lengths - 1]  # (B, d)
        s = last @ e.T
        s[:, 0] = float("-inf")
        return s
