"""RPG's part of the training road (lib/road.py): every item of a list's catalogue scored through its digits.

Cold items too (no cold-start rule); lists hold top_k + the user's seen items, filtered by the evaluator
like every ranker's. With model.digit_init codebook the digit embeddings start as the tokenizer's centroids.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from lib.catalogue import list_mask
from lib.data.split import LISTS, SplitData
from lib.models.recommend import recommend
from lib.rpg.config import RPGConfig
from lib.rpg.training import autocast, fit, refit


class RPGRun:
    family = "parallel_generators"

    def __init__(self, cfg: RPGConfig, digits: np.ndarray, codebook_size: int, meta: dict, tokenizer: str,
                 split: SplitData, centroids: np.ndarray | None = None):
        self.cfg, self.digits, self.codebook_size, self.centroids = cfg, digits, codebook_size, centroids
        self.candidates = {s: list_mask(split.catalogue, s) for s in LISTS}  # each list's catalogue
        full_id = np.unique(digits[1:], axis=0, return_counts=True)[1]
        self.n_levels = int(meta["levels"])
        self.head = {"tokenizer": tokenizer, "method": meta.get("method", "?"), "digits": self.n_levels,
                     "codebook_size": codebook_size, "items_sharing_all_digits": int(full_id[full_id > 1].sum())}
        self.tail, self.rules = {}, []

    def fit(self, split: SplitData, ckpt_dir: str, logger):
        return fit(self.cfg, self.digits, self.codebook_size, split.train, split.val, ckpt_dir, logger=logger,
                   centroids=self.centroids, val_candidates=self.candidates["val"])

    def refit(self, split: SplitData, epochs: int):
        return refit(self.cfg, self.digits, self.codebook_size, split.train_full, epochs, centroids=self.centroids)

    def before_lists(self, best, split: SplitData, device: str) -> dict:
        return {}

    def lists(self, module, split: SplitData, lists: str, device: str) -> tuple[pd.DataFrame, dict]:
        rows = split.rows(lists)
        t0 = time.perf_counter()
        with autocast(self.cfg.train, device):
            recs = recommend(module.model, rows, self.cfg.top_k, device=device, candidates=self.candidates[lists])
        seconds = time.perf_counter() - t0
        return recs, {f"{lists}/catalogue_items": int(self.candidates[lists].sum()),
                      f"{lists}/score_seconds": round(seconds, 2),
                      f"{lists}/users_per_second": round(len(rows) / seconds, 1)}
