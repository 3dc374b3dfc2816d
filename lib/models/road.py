"""The rankers' part of the training road (lib/road.py): SASRec / GPT-2 scoring every item of a list's catalogue.

Items: IDs, item vectors (content runs) or a tokenizer's codes (code runs), as lib/models/item_repr.py
builds them. The training objective's classes are the items known at the training cut-off (T_val; T_test
for a refit); a list holds only items known at its cut-off, and an ID-only model never lists an item it
has no trained row for (an untrained random row would place it by chance). With `cold_shift` (a list
rule, recorded in run.json `rules`), cold items' scores are shifted by b user score sds, b chosen on
validation (lib/models/recommend.py).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from lib.catalogue import list_mask, training_mask
from lib.cold import knowable_pool
from lib.data.split import SplitData
from lib.models.config import SeqRecConfig
from lib.models.item_repr import FUSION_KINDS, ItemFeatures
from lib.models.recommend import choose_cold_shift, recommend, shifter
from lib.models.training import fit, refit
from lib.runs import RunSpec


def warm_items(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """(N+1,) bool: the item has an interaction in `train` (the model's training data)."""
    warm = np.zeros(n_items + 1, dtype=bool)
    warm[train["item"].to_numpy()] = True
    return warm


class RankerRun:
    """One ranker run: `spec` (backbone, representation) under config `cfg`, with its item inputs."""

    def __init__(self, family: str, spec: RunSpec, cfg: SeqRecConfig, n_items: int, split: SplitData,
                 content: np.ndarray | None = None, codes: np.ndarray | None = None):
        self.family, self.spec, self.cfg, self.n_items = family, spec, cfg, n_items
        self.features = ItemFeatures(content=content, codes=codes, warm=warm_items(split.train, n_items),
                                     known=training_mask(split.catalogue, refit=False))
        self.candidates = {"val": self._candidates(split, "val")}  # the refit's (if any) comes with it
        self.adjust = {"val": None, "test": None}
        self.head, self.rules = {}, []
        self.n_levels = None if codes is None else codes.shape[1]

    @property
    def tail(self) -> dict:
        """ID rows held at zero in the final model (its features: the refit's, if any)."""
        zero = self.spec.representation in FUSION_KINDS and self.cfg.model.zero_cold_ids
        return {"zeroed_id_rows": int((~self.features.warm[1:]).sum()) if zero else 0}

    def _candidates(self, split: SplitData, lists: str) -> np.ndarray:
        """(N+1,) bool: the items a `lists` list may hold: known at its cut-off and, for an ID-only model,
        trained (its untrained rows are random: they would reach cold targets by chance alone)."""
        known = list_mask(split.catalogue, lists)
        return known & self.features.warm if self.spec.representation == "id" else known

    def fit(self, split: SplitData, ckpt_dir: str, logger):
        return fit(self.spec.backbone, self.spec.representation, self.cfg, split.train, split.val, self.n_items,
                   self.features, ckpt_dir, logger=logger, val_candidates=self.candidates["val"])

    def refit(self, split: SplitData, epochs: int):
        self.features = dataclasses.replace(self.features, warm=warm_items(split.train_full, self.n_items),
                                            known=training_mask(split.catalogue, refit=True))
        return refit(self.spec.backbone, self.spec.representation, self.cfg, split.train_full, self.n_items,
                     self.features, epochs)

    def before_lists(self, best, split: SplitData, device: str) -> dict:
        self.candidates["test"] = self._candidates(split, "test")  # features: the refit's, if any
        if self.cfg.cold_shift == (0.0,):
            return {}
        self.rules.append("cold_shift")  # a list rule (an analysis, never a leaderboard row): b chosen on validation
        cold = {s: knowable_pool(self.candidates[s], split.fit_rows(s)["item"].unique()) for s in self.candidates}
        shift, by_shift = choose_cold_shift(best.model, split.val, cold["val"], self.cfg.cold_shift,
                                            device=device, candidates=self.candidates["val"])
        self.adjust = {s: shifter(cold[s], shift) for s in cold}
        return {"cold_shift": shift, "cold_shift_val_ndcg@10": {f"{b:g}": round(v, 6) for b, v in by_shift.items()}}

    def lists(self, module, split: SplitData, lists: str, device: str) -> tuple[pd.DataFrame, dict]:
        return recommend(module.model, split.rows(lists), self.cfg.top_k, device=device, adjust=self.adjust[lists],
                         candidates=self.candidates[lists]), {}
