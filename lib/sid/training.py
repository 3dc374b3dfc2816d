"""Training of the GPT-2 Semantic-ID generator with Lightning: early stopping on validation NDCG@10.

Validation runs the very beam search used on test (same width, same seen-item exclusion) on
a fixed random subset of validation users, so the model is selected for generation, not
for next-token loss (an earlier implementation of this study validated on token scores).
Option `train.monitor: target_nll` stops on a cheaper proxy instead: the teacher-forced loss of the
validation targets' codes over the validation trie (no search), logged under either monitor.

Two catalogues (lib/catalogue.py, issue 29): the training trie holds the items known at the training
cut-off (its trie-restricted softmax never spends mass on, nor learns against, an item that did not
exist yet), the validation trie the items known at the validation lists' cut-off.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

import lightning as L
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from lib import metrics
from lib.cold import knowable_pool
from lib.models.data import LengthBucketSampler
from lib.sid.beam import length_batches
from lib.sid.config import DecodeConfig, GPT2SidConfig, SidModelConfig, SidTrainConfig
from lib.sid.data import SidSequenceDataset, user_sequences
from lib.sid.model import SidGPT2
from lib.sid.recommend import autocast, decode_users
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab, column_masks
from lib.trainer import VAL_METRIC, fit_early_stopping, train_epochs, with_schedule

log = logging.getLogger(__name__)
NLL_METRIC = "val/target_nll"
VOCAB_KEYS = ("codebook_sizes", "token_offsets", "special_tokens", "vocab_size")


class SidModule(L.LightningModule):
    """Lightning wrapper; hyperparameters (model config + token layout) rebuild the model from a checkpoint."""

    def __init__(self, vocab_meta: dict, model_cfg: dict, train_cfg: dict, decode_cfg: dict, top_k: int = 100):
        super().__init__()
        self.save_hyperparameters()
        self.cfg = GPT2SidConfig(SidModelConfig(**model_cfg), SidTrainConfig(**train_cfg),
                                 DecodeConfig(**decode_cfg), top_k)
        ub = self.cfg.model.user_buckets
        v = vocab_meta["vocab_size"] + ub
        masks = column_masks(vocab_meta["token_offsets"], vocab_meta["codebook_sizes"], v)
        self.model = SidGPT2(v, 1 + (ub > 0), masks, self.cfg.model)
        self.val_ndcg = MeanMetric()
        self.val_nll = MeanMetric()  # teacher-forced -log P(target's codes | history): a cheap proxy of the search
        self.targets_per_batch = 1.0  # set by `fit`
        self.total_steps = 1  # optimizer steps of max_epochs (the lr schedule's budget), set by `fit` / `refit`
        self.vocab: SidVocab | None = None  # set by `fit`: the generator reads codes, the trie masks them
        self.trie: SidTrie | None = None  # the training catalogue's trie (trie_softmax)
        self.val_trie: SidTrie | None = None  # the validation lists' catalogue: the search's trie
        self.val_rows: pd.DataFrame | None = None
        self.cold_items: np.ndarray | None = None  # (N+1,) bool: validation's cold-rule pool (decode.cold_every)

    def on_fit_start(self):
        # The tries are plain tensors shared with decoding outside Lightning, not buffers, so moving the
        # module leaves them behind; training_step indexes one with on-device node ids (trie_softmax).
        for trie in (self.trie, self.val_trie):
            if trie is not None:
                trie.to(self.device)

    def training_step(self, batch, _):
        inp, tgt, col, node = batch
        children = self.trie.children if self.model.cfg.trie_softmax else None
        with autocast(self.cfg, self.device):  # decode_users applies the same mode to validation and test
            loss = self.model.loss(inp, tgt, col, node, children) / self.targets_per_batch  # constant, as SeqRec
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=inp.shape[0])
        return loss

    def validation_step(self, rows, _):
        v = self.val_rows.iloc[rows.cpu().numpy() if torch.is_tensor(rows) else rows]
        hist = list(v["history"])
        if self.cfg.train.monitor == "ndcg":  # the search; the proxy alone otherwise
            items, _ = decode_users(self.model, self.vocab, self.val_trie, v["user"].to_numpy(), hist, self.cfg,
                                    self.device, cold_items=self.cold_items)
            ranks = metrics.target_ranks(metrics.top_k(items, 10, seen=hist), v["target"].to_numpy())
            self.val_ndcg.update(torch.as_tensor(metrics.ndcg(ranks, 10), dtype=torch.float32, device=self.device))
        nll, reachable = self.target_nll(v["user"].to_numpy(), hist, v["target"].to_numpy())
        if reachable:
            self.val_nll.update(nll, weight=reachable)

    @torch.no_grad()
    def target_nll(self, users: np.ndarray, histories: list, targets: np.ndarray) -> tuple[torch.Tensor, int]:
        """(mean, count) over the users whose target the validation lists can hold of -log P(target item's codes |
        history) under teacher forcing, each code's softmax over the validation trie's continuations (as
        trie_softmax trains): the training loss on validation targets."""
        targets = np.asarray(targets, dtype=np.int64)
        known = self.val_trie.items[targets]  # an unreachable target has no codes path in the trie
        seqs = [np.r_[np.asarray(h, dtype=np.int64)[-self.cfg.model.max_len:], t]
                for h, t, k in zip(histories, targets, known, strict=True) if k]
        if not seqs:
            return torch.zeros((), device=self.device), 0
        # the history's items are inputs only (one may be newer than the trie's cut-off): no nodes, then the
        # target's prefix nodes in the validation trie on its own tokens, the last n_levels targets of each row
        ds = SidSequenceDataset(np.asarray(users)[known], seqs, self.vocab)
        inp, tgt, col, node = ds.collate([ds[i] for i in range(len(ds))])
        levels = self.vocab.n_levels
        last = torch.as_tensor([len(s) for s in ds.seqs]) - 1 - levels  # (U,) first target position of the item
        pos = last[:, None] + torch.arange(levels)[None, :]  # (U, levels)
        rows = torch.arange(len(seqs))[:, None]
        depth = np.stack(self.val_trie.node_of[:levels], axis=1)[targets[known]]  # (U, levels)
        node[rows, pos] = torch.from_numpy(depth)
        keep = torch.full_like(col, -1)
        keep[rows, pos] = col[rows, pos]
        col = keep  # only the target item's codes are scored
        children = self.val_trie.children if self.model.cfg.trie_softmax else None
        with autocast(self.cfg, self.device):
            total = self.model.loss(inp.to(self.device), tgt.to(self.device), col.to(self.device),
                                    node.to(self.device), children)
        return total.float() / len(seqs), len(seqs)

    def on_validation_epoch_end(self):
        if self.cfg.train.monitor == "ndcg":
            self.log(VAL_METRIC, self.val_ndcg.compute(), prog_bar=True)
        self.log(NLL_METRIC, self.val_nll.compute(), prog_bar=self.cfg.train.monitor == "target_nll")
        self.val_ndcg.reset()
        self.val_nll.reset()

    def configure_optimizers(self):
        tc = self.cfg.train
        return with_schedule(torch.optim.AdamW(self.parameters(), lr=tc.lr, weight_decay=tc.weight_decay), tc,
                             self.total_steps)


def validation_subset(val: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A fixed random subset of n validation users (all when n = 0 or n >= len)."""
    if not n or n >= len(val):
        return val.reset_index(drop=True)
    idx = np.sort(np.random.default_rng(seed).choice(len(val), n, replace=False))
    return val.iloc[idx].reset_index(drop=True)


def _module(cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, train: pd.DataFrame,
            catalogue: np.ndarray | None) -> tuple[SidModule, DataLoader, list]:
    """A fresh module (the caller seeds: lib.trainer.seed_and_pin) with the trie of its training catalogue
    ((N+1,) bool, None = every item), and the loader of `train`'s sequences."""
    tc = cfg.train
    module = SidModule({k: meta[k] for k in VOCAB_KEYS}, asdict(cfg.model), asdict(tc), asdict(cfg.decode),
                       cfg.top_k)
    module.vocab, module.trie = vocab, SidTrie(vocab.codes, vocab.sizes, catalogue)
    module.val_trie = module.trie
    users, seqs = user_sequences(train, cfg.model.max_len)
    ds = SidSequenceDataset(users, seqs, vocab, module.trie.node_of)
    sampler = LengthBucketSampler(ds.lengths(), tc.batch_size, tc.seed, tc.length_pool)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate, num_workers=tc.num_workers)
    module.targets_per_batch = sum(len(s) * vocab.n_levels for s in seqs) / max(1, len(sampler))
    module.total_steps = tc.max_epochs * len(sampler)  # the lr schedule's budget (fit's, also in a refit)
    return module, loader, seqs


def fit(cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, train: pd.DataFrame, val: pd.DataFrame, ckpt_dir: str,
        logger=None, progress: bool = True, cold: np.ndarray | None = None, catalogue: np.ndarray | None = None,
        val_candidates: np.ndarray | None = None) -> tuple[SidModule, dict]:
    """Train with early stopping on beam-search NDCG@10 (or `train.monitor`); return the best module and facts.

    catalogue (N+1,) bool: the items known at the training cut-off, the training trie (trie_softmax);
    val_candidates (N+1,) bool: the validation lists' catalogue, the search's trie (default: catalogue);
    None = every item (leave-one-out). cold: the cold-start rule's candidates (decode.cold_every), item
    ids or a mask; default: the knowable pool, the validation catalogue's items without an interaction
    in `train` (lib/cold.knowable_pool).
    """
    tc = cfg.train
    module, train_loader, seqs = _module(cfg, vocab, meta, train, catalogue)
    trie = module.trie
    if val_candidates is not None:
        module.val_trie = SidTrie(vocab.codes, vocab.sizes, val_candidates)
    if cold is None:  # the knowable pool: validation candidates never trained on
        cold = knowable_pool(module.val_trie.items, train["item"].unique())
    module.cold_items = np.asarray(cold)
    module.val_rows = validation_subset(val, tc.val_users, tc.seed)
    n_targets = sum(len(s) * vocab.n_levels for s in seqs)
    lengths = np.array([min(len(h), cfg.model.max_len) for h in module.val_rows["history"]])
    search = tc.monitor == "ndcg"  # the proxy is one teacher-forced pass: training-sized batches
    val_loader = DataLoader(length_batches(lengths, cfg.decode.batch_size if search else tc.batch_size),
                            batch_size=None)
    log.info("gpt2_sid: %d training sequences (%d target tokens), %d validation users, vocab %d; "
             "catalogue %d items in training, %d in validation lists", len(seqs), n_targets, len(module.val_rows),
             vocab.vocab_size, int(trie.items.sum()), int(module.val_trie.items.sum()))
    best_path, facts = fit_early_stopping(module, train_loader, val_loader, tc, ckpt_dir, logger, progress,
                                          *((VAL_METRIC, "max") if search else (NLL_METRIC, "min")))
    module.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"])
    facts |= {
        "train_sequences": len(seqs),
        "val_users_decoded": len(module.val_rows) if search else 0,
        "val_users": len(module.val_rows),
        "catalogue_train_items": int(trie.items.sum()),
        "parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    trie.to("cpu")  # with the module: the caller picks the decoding device
    module.val_trie.to("cpu")
    return module.cpu(), facts


def refit(cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, train_full: pd.DataFrame, epochs: int,
          progress: bool = True, catalogue: np.ndarray | None = None) -> SidModule:
    """Retrain from scratch on train + validation period for the epoch count chosen on validation.

    Used with split.retrain_on_validation, as lib.models.training.refit: validation targets are in
    the training data now, so nothing is validated and the last epoch is the model. catalogue (N+1,)
    bool: the items known at the refit's cut-off (T_test), its training trie; None = every item.
    """
    module, loader, _ = _module(cfg, vocab, meta, train_full, catalogue)
    train_epochs(module, loader, cfg.train, epochs, progress)
    module.trie.to("cpu")
    return module.cpu()
