"""Validation of the models that score every item (SeqRec, RPG): NDCG@10 of exact full-catalogue scores.

Validation decodes exactly like test (lib.models.recommend.top_items on the same scores), removes
seen items as the evaluator's default does (evaluate.filter_seen) and is scored by the evaluator's
own metric kernel, so the model is selected for what it is tested on.
"""
from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from lib import metrics
from lib.models.data import HistoryDataset
from lib.models.recommend import list_lengths, restrict, top_items
from lib.trainer import VAL_METRIC


class ExactValidationModule(L.LightningModule):
    """A LightningModule whose `self.model` has `score_last(seq, lengths) -> (B, N+1)` and `n_items`;
    it logs VAL_METRIC for early stopping (lib.trainer.fit_early_stopping)."""

    def __init__(self):
        super().__init__()
        self.val_ndcg = MeanMetric()
        self.val_histories: list = []  # set by `validation_loader`
        self.val_targets: np.ndarray = np.zeros(0, dtype=np.int64)
        self.val_candidates: np.ndarray | None = None  # (N+1,) bool: the validation lists' catalogue

    def validation_loader(self, val: pd.DataFrame, max_len: int, num_workers: int = 0,
                          candidates: np.ndarray | None = None) -> DataLoader:
        """Keep the validation rows (user, history, target) and the lists' candidates ((N+1,) bool, None =
        every item: lib.models.recommend.restrict) and return the loader of their histories."""
        self.val_candidates = candidates
        self.val_histories = list(val["history"])
        self.val_targets = val["target"].to_numpy(np.int64)
        return DataLoader(HistoryDataset(self.val_histories, max_len), batch_size=512,
                          collate_fn=HistoryDataset.collate, num_workers=num_workers)

    def val_scores(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N+1) scores of every item; a subclass may wrap them (RPG: its autocast mode)."""
        return self.model.score_last(seq, lengths)

    def validation_step(self, batch, _):
        idx, seq, lengths = batch
        idx = idx.cpu().numpy()
        hist = [self.val_histories[i] for i in idx]
        n_cand = self.model.n_items if self.val_candidates is None else int(np.count_nonzero(self.val_candidates))
        recs = top_items(restrict(self.val_scores(seq, lengths), self.val_candidates), list_lengths(hist, 10, n_cand))
        ranks = metrics.target_ranks(metrics.top_k(recs, 10, seen=hist), self.val_targets[idx])
        self.val_ndcg.update(torch.as_tensor(metrics.ndcg(ranks, 10), dtype=torch.float32, device=self.device))

    def on_validation_epoch_end(self):
        self.log(VAL_METRIC, self.val_ndcg.compute(), prog_bar=True)
        self.val_ndcg.reset()
