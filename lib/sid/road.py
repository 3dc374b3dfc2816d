"""The TIGER-style generator's part of the training road (lib/road.py): GPT-2 generating Semantic IDs.

The split's catalogue (lib/catalogue.py) gives the training trie (items known at the training cut-off)
and each list's trie (items known at its cut-off). TIGER's cold-start rule (decode.cold_every > 0) draws
from each list's knowable cold pool (catalogue items its model never trained on) and is recorded in
run.json `rules`.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from lib.catalogue import list_mask, training_mask
from lib.cold import knowable_pool
from lib.data.split import LISTS, SplitData
from lib.sid.config import GPT2SidConfig
from lib.sid.recommend import invalid_rate, prefix_hit_rates, recommend
from lib.sid.training import fit, refit
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab


class GeneratorRun:
    family = "generators"

    def __init__(self, cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, tokenizer: str, split: SplitData):
        self.cfg, self.vocab, self.meta = cfg, vocab, meta
        self.candidates = {s: list_mask(split.catalogue, s) for s in LISTS}  # each list's catalogue
        self.cold = {s: knowable_pool(self.candidates[s], split.fit_rows(s)["item"].unique()) for s in LISTS}
        self.rules = ["tiger_cold_start"] if cfg.decode.cold_every else []
        self.head = {"tokenizer": tokenizer, "method": meta.get("method", "?"), "n_levels": vocab.n_levels,
                     "vocab_size": vocab.vocab_size}
        self.tail, self.n_levels = {}, vocab.n_levels

    def fit(self, split: SplitData, ckpt_dir: str, logger):
        return fit(self.cfg, self.vocab, self.meta, split.train, split.val, ckpt_dir, logger=logger,
                   cold=self.cold["val"], catalogue=training_mask(split.catalogue, refit=False),
                   val_candidates=self.candidates["val"])

    def refit(self, split: SplitData, epochs: int):
        return refit(self.cfg, self.vocab, self.meta, split.train_full, epochs,
                     catalogue=training_mask(split.catalogue, refit=True))

    def before_lists(self, best, split: SplitData, device: str) -> dict:
        return {}

    def lists(self, module, split: SplitData, lists: str, device: str) -> tuple[pd.DataFrame, dict]:
        rows, candidates = split.rows(lists), self.candidates[lists]
        t0 = time.perf_counter()
        trie = SidTrie(self.vocab.codes, self.vocab.sizes, candidates)  # only items known at the list's cut-off
        recs, codes = recommend(module.model, self.vocab, trie, rows, self.cfg, device=device,
                                cold_items=self.cold[lists])
        seconds = time.perf_counter() - t0
        hits = prefix_hit_rates(list(recs["items"]), rows["target"].to_numpy(np.int64), self.vocab)
        return recs, {f"{lists}/catalogue_items": int(candidates.sum()), f"{lists}/decode_seconds": round(seconds, 1),
                      f"{lists}/users_per_second": round(len(rows) / seconds, 1),
                      f"{lists}/invalid_id_rate": invalid_rate(codes, self.vocab, candidates),
                      f"{lists}/short_lists": int(sum(len(i) < self.cfg.top_k for i in recs["items"])),
                      **{f"{lists}/{k}": v for k, v in hits.items()}}
