"""Training of RPG with Lightning: early stopping on validation NDCG@10 of exact full-catalogue scores.

Validation scores every item exactly as test does (RPG.score_last, top items, seen items removed
like the evaluator: lib/models/validation.py, shared with SeqRec), on all validation users: scoring
is m gathers per user, so it is cheap; only the validation lists' catalogue is ranked (lib/catalogue.py).
The learning rate warms up linearly and decays along a cosine to 0 at max_epochs (the paper's schedule).

Training spans codes, never items: the loss is one cross-entropy per digit over that digit's K codes,
against the targets' digits only, so an item unknown at the training cut-off is neither a negative nor
part of any normaliser (tests/rpg: the loss does not depend on such an item's digits).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from lib.models.data import LengthBucketSampler, NextItemDataset, training_sequences
from lib.models.validation import ExactValidationModule
from lib.rpg.config import RPGConfig, RPGModelConfig, RPGTrainConfig
from lib.rpg.model import RPG
from lib.trainer import fit_early_stopping, train_epochs, with_schedule

log = logging.getLogger(__name__)


def autocast(tc: RPGTrainConfig, device: torch.device | str):
    """The numerical mode of train.precision for a forward pass (training and scoring alike)."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=tc.precision == "bf16-mixed")


class RPGModule(ExactValidationModule):
    """Lightning wrapper; its hyperparameters rebuild the model from a checkpoint, whose buffers carry the codes.

    `codes` (N+1, m) (and `centroids` for digit_init codebook) are needed to build a new model; loading
    a checkpoint needs neither: the model is built on placeholder digits and random digit embeddings,
    and the state dict then restores the real ones.
    """

    def __init__(self, n_items: int, n_digits: int, codebook_size: int, model_cfg: dict, train_cfg: dict,
                 top_k: int = 100, codes: np.ndarray | None = None, centroids: np.ndarray | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["codes", "centroids"])
        self.train_cfg = RPGTrainConfig(**train_cfg)
        model_cfg = RPGModelConfig(**model_cfg)
        if codes is None:  # restoring a checkpoint: its state dict holds the codes and the trained digit rows
            codes = np.vstack([np.full(n_digits, -1), np.zeros((n_items, n_digits), dtype=np.int64)])
            model_cfg = dataclasses.replace(model_cfg, digit_init="random")
        self.model = RPG(np.asarray(codes), codebook_size, model_cfg, centroids)
        self.positions_per_batch = 1.0  # set from the training data by `fit` / `refit`
        self.total_steps = 1  # optimizer steps of max_epochs, for the cosine schedule

    def training_step(self, batch, _):
        inp, tgt = batch
        with autocast(self.train_cfg, self.device):
            loss = self.model.loss(inp, tgt, self.train_cfg.loss_chunk) / self.positions_per_batch
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=inp.shape[0])
        return loss

    def val_scores(self, seq, lengths):
        with autocast(self.train_cfg, self.device):  # validation scores in the mode test scores in
            return self.model.score_last(seq, lengths)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        if self.train_cfg.grad_clip:  # global norm, as the paper's code (max_grad_norm)
            self.clip_gradients(optimizer, gradient_clip_val=self.train_cfg.grad_clip, gradient_clip_algorithm="norm")

    def configure_optimizers(self):
        tc = self.train_cfg
        return with_schedule(torch.optim.AdamW(self.parameters(), lr=tc.lr, weight_decay=tc.weight_decay), tc,
                             self.total_steps)


def _module(cfg: RPGConfig, codes: np.ndarray, codebook_size: int, train: pd.DataFrame,
            centroids: np.ndarray | None = None) -> tuple[RPGModule, DataLoader, list[np.ndarray]]:
    """A fresh module (the caller seeds: lib.trainer.seed_and_pin) and the loader of `train`'s sequences
    (schedule and loss scale set)."""
    tc = cfg.train
    module = RPGModule(codes.shape[0] - 1, codes.shape[1], codebook_size, asdict(cfg.model), asdict(tc), cfg.top_k,
                       codes=codes, centroids=centroids)
    seqs = training_sequences(train, cfg.model.max_len)
    sampler = LengthBucketSampler([len(s) for s in seqs], tc.batch_size, tc.seed, tc.length_pool)
    loader = DataLoader(NextItemDataset(seqs), batch_sampler=sampler, collate_fn=NextItemDataset.collate,
                        num_workers=tc.num_workers)
    module.positions_per_batch = sum(len(s) - 1 for s in seqs) / max(1, len(sampler))
    module.total_steps = tc.max_epochs * len(sampler)
    return module, loader, seqs


def fit(cfg: RPGConfig, codes: np.ndarray, codebook_size: int, train: pd.DataFrame, val: pd.DataFrame,
        ckpt_dir: str, logger=None, progress: bool = True, centroids: np.ndarray | None = None,
        val_candidates: np.ndarray | None = None) -> tuple[RPGModule, dict]:
    """Train with early stopping on validation NDCG@10; return the best module and training facts.

    val_candidates (N+1,) bool: the validation lists' catalogue (items known at T_val); None = every item.
    """
    module, loader, seqs = _module(cfg, codes, codebook_size, train, centroids)
    val_loader = module.validation_loader(val, cfg.model.max_len, cfg.train.num_workers, candidates=val_candidates)
    log.info("rpg: %d training sequences, %d validation users, %d items x %d digits of %d codes",
             len(seqs), len(val), module.model.n_items, module.model.n_digits, codebook_size)
    best_path, facts = fit_early_stopping(module, loader, val_loader, cfg.train, ckpt_dir, logger, progress)
    module.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=False)["state_dict"])
    facts |= {"train_sequences": len(seqs),
              "parameters": sum(p.numel() for p in module.parameters() if p.requires_grad)}
    return module.cpu(), facts


def refit(cfg: RPGConfig, codes: np.ndarray, codebook_size: int, train_full: pd.DataFrame, epochs: int,
          progress: bool = True, centroids: np.ndarray | None = None) -> RPGModule:
    """Retrain from scratch on train + validation period for the epoch count chosen on validation
    (split.retrain_on_validation); the schedule keeps its max_epochs length, as in `fit`."""
    module, loader, _ = _module(cfg, codes, codebook_size, train_full, centroids)
    return train_epochs(module, loader, cfg.train, epochs, progress).cpu()
