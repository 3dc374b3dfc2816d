"""Training of the GPT-2 Semantic-ID generator with Lightning: early stopping on validation NDCG@10.

Validation runs the very beam search used on test (same width, same seen-item exclusion) on
a fixed random subset of validation users, so the model is selected for generation, not
for next-token loss (an earlier implementation of this study validated on token scores).
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
from lib.models.data import LengthBucketSampler
from lib.sid.beam import length_batches
from lib.sid.config import DecodeConfig, GPT2SidConfig, SidModelConfig, SidTrainConfig
from lib.sid.data import SidSequenceDataset, user_sequences
from lib.sid.model import SidGPT2
from lib.sid.recommend import autocast, decode_users
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab, column_masks
from lib.trainer import VAL_METRIC, accelerator, fit_early_stopping

log = logging.getLogger(__name__)
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
        self.targets_per_batch = 1.0  # set by `fit`
        self.vocab: SidVocab | None = None  # set by `fit`: the generator reads codes, the trie masks them
        self.trie: SidTrie | None = None
        self.val_rows: pd.DataFrame | None = None
        self.cold_items: np.ndarray | None = None  # items without training interaction (decode.cold_every)

    def on_fit_start(self):
        # The trie is plain tensors shared with decoding outside Lightning, not buffers, so moving the
        # module leaves it behind; training_step indexes it with on-device node ids (trie_softmax).
        if self.trie is not None:
            self.trie.to(self.device)

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
        items, _ = decode_users(self.model, self.vocab, self.trie, v["user"].to_numpy(), hist, self.cfg,
                                self.device, cold_items=self.cold_items)
        ranks = metrics.target_ranks(metrics.top_k(items, 10, seen=hist), v["target"].to_numpy())
        self.val_ndcg.update(torch.as_tensor(metrics.ndcg(ranks, 10), dtype=torch.float32, device=self.device))

    def on_validation_epoch_end(self):
        self.log(VAL_METRIC, self.val_ndcg.compute(), prog_bar=True)
        self.val_ndcg.reset()

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.cfg.train.lr, weight_decay=self.cfg.train.weight_decay)


def cold_items(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """Items 1..N with no interaction in the training data: the generator never saw them as targets."""
    return np.setdiff1d(np.arange(1, n_items + 1), train["item"].to_numpy())


def validation_subset(val: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """A fixed random subset of n validation users (all when n = 0 or n >= len)."""
    if not n or n >= len(val):
        return val.reset_index(drop=True)
    idx = np.sort(np.random.default_rng(seed).choice(len(val), n, replace=False))
    return val.iloc[idx].reset_index(drop=True)


def _module(cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, train: pd.DataFrame,
            cold: np.ndarray | None) -> tuple[SidModule, DataLoader, list]:
    """A fresh seeded module with its trie and cold items, and the loader of `train`'s sequences."""
    tc = cfg.train
    L.seed_everything(tc.seed, workers=True, verbose=False)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    module = SidModule({k: meta[k] for k in VOCAB_KEYS}, asdict(cfg.model), asdict(tc), asdict(cfg.decode),
                       cfg.top_k)
    module.vocab, module.trie = vocab, SidTrie(vocab.codes, vocab.sizes)
    module.cold_items = cold_items(train, vocab.n_items) if cold is None else np.asarray(cold, dtype=np.int64)
    users, seqs = user_sequences(train, cfg.model.max_len)
    ds = SidSequenceDataset(users, seqs, vocab, module.trie.node_of)
    sampler = LengthBucketSampler(ds.lengths(), tc.batch_size, tc.seed, tc.length_pool)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate, num_workers=tc.num_workers)
    module.targets_per_batch = sum(len(s) * vocab.n_levels for s in seqs) / max(1, len(sampler))
    return module, loader, seqs


def fit(cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, train: pd.DataFrame, val: pd.DataFrame, ckpt_dir: str,
        logger=None, progress: bool = True, cold: np.ndarray | None = None) -> tuple[SidModule, dict]:
    """Train with early stopping on beam-search NDCG@10; return the best module and training facts.

    cold: the cold-start rule's candidate items (decode.cold_every); default: the items without an
    interaction in `train`.
    """
    tc = cfg.train
    module, train_loader, seqs = _module(cfg, vocab, meta, train, cold)
    trie = module.trie
    module.val_rows = validation_subset(val, tc.val_users, tc.seed)
    n_targets = sum(len(s) * vocab.n_levels for s in seqs)
    lengths = np.array([min(len(h), cfg.model.max_len) for h in module.val_rows["history"]])
    val_loader = DataLoader(length_batches(lengths, cfg.decode.batch_size), batch_size=None)
    log.info("gpt2_sid: %d training sequences (%d target tokens), %d validation users decoded, vocab %d",
             len(seqs), n_targets, len(module.val_rows), vocab.vocab_size)
    best_path, facts = fit_early_stopping(module, train_loader, val_loader, tc, ckpt_dir, logger, progress)
    module.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"])
    facts |= {
        "train_sequences": len(seqs),
        "val_users_decoded": len(module.val_rows),
        "parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    trie.to("cpu")  # with the module: the caller picks the decoding device
    return module.cpu(), facts


def refit(cfg: GPT2SidConfig, vocab: SidVocab, meta: dict, train_full: pd.DataFrame, epochs: int,
          cold: np.ndarray | None = None, progress: bool = True) -> SidModule:
    """Retrain from scratch on train + validation period for the epoch count chosen on validation.

    Used with split.retrain_on_validation, as lib.models.training.refit: validation targets are in
    the training data now, so nothing is validated and the last epoch is the model.
    """
    tc = cfg.train
    module, loader, _ = _module(cfg, vocab, meta, train_full, cold)
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator(tc.device), devices=tc.devices, logger=False,
                        deterministic=True, enable_progress_bar=progress, enable_model_summary=False,
                        enable_checkpointing=False, limit_val_batches=0, use_distributed_sampler=False)
    trainer.fit(module, loader)
    module.trie.to("cpu")
    return module.cpu()
