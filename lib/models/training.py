"""Training of SeqRec models with Lightning: early stopping on validation NDCG@10.

Validation decodes exactly like test and is scored by the evaluator's own metric kernel
(lib/models/validation.py, shared with RPG), so the model is selected for what it is tested on.
"""
from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from lib.models.config import ModelConfig, SeqRecConfig, TrainConfig
from lib.models.data import LengthBucketSampler, NextItemDataset, training_sequences, training_targets
from lib.models.item_repr import ItemFeatures
from lib.models.seqrec import SeqRec
from lib.models.validation import ExactValidationModule
from lib.trainer import fit_early_stopping, train_epochs, with_schedule

log = logging.getLogger(__name__)


class SeqRecModule(ExactValidationModule):
    """Lightning wrapper; its hyperparameters (saved in every checkpoint) rebuild the model."""

    def __init__(self, backbone: str, representation: str, n_items: int, model_cfg: dict, train_cfg: dict,
                 top_k: int = 100, features: ItemFeatures | None = None):
        super().__init__()
        # content comes from the embed artifact; codes and warm flags are buffers in the weights
        self.save_hyperparameters(ignore=["features"])
        self.train_cfg = TrainConfig(**train_cfg)
        self.model = SeqRec(backbone, representation, n_items, ModelConfig(**model_cfg), features)
        self.positions_per_batch = 1.0  # set from the training data by `fit` / `refit`
        self.total_steps = 1  # optimizer steps of max_epochs (the lr schedule's budget), set by `fit` / `refit`

    def training_step(self, batch, _):
        inp, tgt = batch
        # constant normaliser: every position weighs the same whatever its batch (see SeqRec.loss)
        loss = self.model.loss(inp, tgt, self.train_cfg.loss, self.train_cfg.ce_chunk,
                               self.train_cfg.negatives, self.train_cfg.ce_dtype) / self.positions_per_batch
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=inp.shape[0])
        return loss

    def configure_optimizers(self):
        tc = self.train_cfg
        return with_schedule(torch.optim.Adam(self.parameters(), lr=tc.lr, weight_decay=tc.weight_decay), tc,
                             self.total_steps)


def _train_loader(seqs: list[np.ndarray], tc: TrainConfig) -> DataLoader:
    sampler = LengthBucketSampler([len(s) for s in seqs], tc.batch_size, tc.seed, tc.length_pool)
    return DataLoader(NextItemDataset(seqs), batch_sampler=sampler, collate_fn=NextItemDataset.collate,
                      num_workers=tc.num_workers)


def _positions_per_batch(seqs: list[np.ndarray], tc: TrainConfig) -> float:
    """Mean number of predicted positions in a batch: each sequence of n items has n - 1 targets."""
    return sum(len(s) - 1 for s in seqs) / max(1, -(-len(seqs) // tc.batch_size))


def fit(backbone: str, representation: str, cfg: SeqRecConfig, train: pd.DataFrame, val: pd.DataFrame,
        n_items: int, features: ItemFeatures | None, ckpt_dir: str, logger=None,
        progress: bool = True, val_candidates: np.ndarray | None = None) -> tuple[SeqRecModule, dict]:
    """Train with early stopping; return the best-on-validation module and training facts. The caller seeds
    (lib.trainer.seed_and_pin, as the training road does).

    val_candidates (N+1,) bool: the validation lists' catalogue (None = every item), as in the stage's lists.
    """
    tc = cfg.train
    module = SeqRecModule(backbone, representation, n_items, asdict(cfg.model), asdict(tc), cfg.top_k, features)
    seqs = training_sequences(train, cfg.model.max_len)
    train_loader = _train_loader(seqs, tc)
    module.positions_per_batch = _positions_per_batch(seqs, tc)
    module.model.set_target_counts(training_targets(seqs))
    module.total_steps = tc.max_epochs * len(train_loader)
    val_loader = module.validation_loader(val, cfg.model.max_len, tc.num_workers, candidates=val_candidates)
    log.info("%s/%s: %d training sequences, %d validation users, %d items",
             backbone, representation, len(seqs), len(val), n_items)
    best_path, facts = fit_early_stopping(module, train_loader, val_loader, tc, ckpt_dir, logger, progress)
    best = SeqRecModule.load_from_checkpoint(best_path, features=features, map_location="cpu")
    facts |= {
        "train_sequences": len(seqs),
        "parameters": sum(p.numel() for p in best.parameters() if p.requires_grad),
    }
    return best, facts


def refit(backbone: str, representation: str, cfg: SeqRecConfig, train_full: pd.DataFrame, n_items: int,
          features: ItemFeatures | None, epochs: int, progress: bool = True) -> SeqRecModule:
    """Retrain from scratch on train + validation period for the epoch count chosen on validation.

    Used with split.retrain_on_validation: validation can no longer select the checkpoint (its
    targets are in the training data), so the number of epochs found by `fit` is reused.
    """
    tc = cfg.train
    module = SeqRecModule(backbone, representation, n_items, asdict(cfg.model), asdict(tc), cfg.top_k, features)
    seqs = training_sequences(train_full, cfg.model.max_len)
    loader = _train_loader(seqs, tc)
    module.positions_per_batch = _positions_per_batch(seqs, tc)
    module.model.set_target_counts(training_targets(seqs))
    module.total_steps = tc.max_epochs * len(loader)  # the schedule keeps fit's length: the same rate at each epoch
    return train_epochs(module, loader, tc, epochs, progress)
