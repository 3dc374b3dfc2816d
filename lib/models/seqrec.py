"""A sequential recommender = item representation + backbone + tied full-catalogue scoring.

The training objective's classes are the items known at the training cut-off (`ItemFeatures.known`,
lib/catalogue.py): an item that does not exist yet is no negative of the full softmax, of sampled
softmax or of BCE. Scoring (`score_last`) covers every row; the lists' catalogue is applied by
lib/models/recommend.py.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lib.models.backbones import BACKBONES
from lib.models.config import ModelConfig, Representation
from lib.models.item_repr import ItemFeatures, ItemRepresentation
from lib.models.losses import full_softmax_ce, mixed_softmax_ce, sampled_softmax_ce


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
        known = features.known
        if known is not None and len(known) != n_items + 1:
            raise ValueError(f"known flags: {len(known)} rows, expected n_items+1 = {n_items + 1}")
        classes = np.flatnonzero(np.asarray(known, bool)[1:]) + 1 if known is not None else np.arange(1, n_items + 1)
        class_of = np.full(n_items + 1, -1, dtype=np.int64)
        class_of[classes] = np.arange(len(classes))
        # derived from the split, not learned: rebuilt from the features when a checkpoint is loaded
        self.register_buffer("classes", torch.as_tensor(classes, dtype=torch.long), persistent=False)  # (C,)
        self.register_buffer("class_of", torch.as_tensor(class_of), persistent=False)  # (N+1,) item -> class or -1
        # each class's share of the training targets (loss `mixed`), set by the training code from its data
        self.register_buffer("target_p", torch.zeros(len(classes)), persistent=False)  # (C,)

    def set_target_counts(self, targets: np.ndarray) -> None:
        """targets: the item ids of every training position's target -> `target_p` (loss `mixed`)."""
        cls = self.class_of[torch.as_tensor(np.asarray(targets, dtype=np.int64))]
        if bool((cls < 0).any()):
            raise ValueError("a training target is not among the items known at the training cut-off")
        counts = torch.bincount(cls, minlength=len(self.classes)).float()
        self.target_p = (counts / counts.sum().clamp(min=1)).to(self.target_p.device)

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
        y = self.class_of[tgt[mask]]  # (M,) class index of each target
        if bool((y < 0).any()):
            raise ValueError("a training target is not among the items known at the training cut-off")
        ec = e[self.classes]  # (C, d): padding and items unknown at the cut-off are no class
        if kind == "ce":  # full softmax over the known catalogue (SASRec+, Klenitskiy & Vasilev 2023)
            return full_softmax_ce(h, ec, y, ce_chunk, getattr(torch, ce_dtype))
        if kind == "sampled":  # softmax over the target and `negatives` uniformly sampled known items
            return sampled_softmax_ce(h, ec, y, negatives)
        if kind == "mixed":  # softmax over the batch's targets + `negatives` uniform items, logQ-corrected
            if not bool(self.target_p[y].gt(0).all()):
                raise ValueError("loss mixed: target_p is unset or misses a batch target (call set_target_counts)")
            return mixed_softmax_ce(h, ec, y, self.target_p, negatives)
        # Original SASRec: binary cross-entropy with one uniformly sampled negative per position.
        y = self.classes[y]  # back to item ids
        neg = self.classes[torch.randint(0, len(self.classes), y.shape, device=y.device)]
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
