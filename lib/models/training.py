"""Training of SeqRec models with Lightning: early stopping on validation NDCG@10.

Validation decodes exactly like test (lib.models.recommend.top_items on the same scores)
and is scored by the evaluator's own metric kernel, so the model is selected for what
it is tested on.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader
from torchmetrics import MeanMetric

from lib import metrics
from lib.models.config import ModelConfig, SeqRecConfig, TrainConfig
from lib.models.data import HistoryDataset, LengthBucketSampler, NextItemDataset, training_sequences
from lib.models.recommend import list_lengths, top_items
from lib.models.seqrec import SeqRec

log = logging.getLogger(__name__)
VAL_METRIC = "val/ndcg@10"


class SeqRecModule(L.LightningModule):
    """Lightning wrapper; its hyperparameters (saved in every checkpoint) rebuild the model."""

    def __init__(self, backbone: str, representation: str, n_items: int, model_cfg: dict, train_cfg: dict,
                 top_k: int = 100, content: np.ndarray | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["content"])  # content comes from the embed artifact
        self.train_cfg = TrainConfig(**train_cfg)
        self.model = SeqRec(backbone, representation, n_items, ModelConfig(**model_cfg), content)
        self.val_ndcg = MeanMetric()
        self.positions_per_batch = 1.0  # set from the training data by `fit` / `refit`
        self.val_histories: list = []
        self.val_targets: np.ndarray = np.zeros(0, dtype=np.int64)

    def training_step(self, batch, _):
        inp, tgt = batch
        # constant normaliser: every position weighs the same whatever its batch (see SeqRec.loss)
        loss = self.model.loss(inp, tgt, self.train_cfg.loss, self.train_cfg.ce_chunk) / self.positions_per_batch
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=inp.shape[0])
        return loss

    def validation_step(self, batch, _):
        idx, seq, lengths = batch
        idx = idx.cpu().numpy()
        hist = [self.val_histories[i] for i in idx]
        recs = top_items(self.model.score_last(seq, lengths), list_lengths(hist, 10, self.model.n_items))
        # seen items removed as the evaluator's default does (evaluate.filter_seen)
        ranks = metrics.target_ranks(metrics.top_k(recs, 10, seen=hist), self.val_targets[idx])
        self.val_ndcg.update(torch.as_tensor(metrics.ndcg(ranks, 10), dtype=torch.float32, device=self.device))

    def on_validation_epoch_end(self):
        self.log(VAL_METRIC, self.val_ndcg.compute(), prog_bar=True)
        self.val_ndcg.reset()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.train_cfg.lr, weight_decay=self.train_cfg.weight_decay)


class EpochTimer(Callback):
    """Wall seconds of every epoch (training + its validation), and one log line per epoch.

    Lightning validates inside the training epoch, so `on_train_epoch_end` sees both.
    """

    def __init__(self):
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self._t)
        m = trainer.callback_metrics
        log.info("epoch %d: train/loss %.4f %s %.5f (%.1f s)", trainer.current_epoch + 1,
                 float(m.get("train/loss", float("nan"))), VAL_METRIC, float(m.get(VAL_METRIC, float("nan"))),
                 self.seconds[-1])


def accelerator(device: str) -> str:
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return device


def _train_loader(seqs: list[np.ndarray], tc: TrainConfig) -> DataLoader:
    sampler = LengthBucketSampler([len(s) for s in seqs], tc.batch_size, tc.seed, tc.length_pool)
    return DataLoader(NextItemDataset(seqs), batch_sampler=sampler, collate_fn=NextItemDataset.collate,
                      num_workers=tc.num_workers)


def _positions_per_batch(seqs: list[np.ndarray], tc: TrainConfig) -> float:
    """Mean number of predicted positions in a batch: each sequence of n items has n - 1 targets."""
    return sum(len(s) - 1 for s in seqs) / max(1, -(-len(seqs) // tc.batch_size))


def fit(backbone: str, representation: str, cfg: SeqRecConfig, train: pd.DataFrame, val: pd.DataFrame,
        n_items: int, content: np.ndarray | None, ckpt_dir: str, logger=None,
        progress: bool = True) -> tuple[SeqRecModule, dict]:
    """Train with early stopping; return the best-on-validation module and training facts."""
    tc = cfg.train
    L.seed_everything(tc.seed, workers=True, verbose=False)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    module = SeqRecModule(backbone, representation, n_items, asdict(cfg.model), asdict(tc), cfg.top_k, content)
    module.val_histories = list(val["history"])
    module.val_targets = val["target"].to_numpy(np.int64)
    seqs = training_sequences(train, cfg.model.max_len)
    train_loader = _train_loader(seqs, tc)
    module.positions_per_batch = _positions_per_batch(seqs, tc)
    val_loader = DataLoader(HistoryDataset(module.val_histories, cfg.model.max_len), batch_size=512,
                            collate_fn=HistoryDataset.collate, num_workers=tc.num_workers)
    log.info("%s/%s: %d training sequences, %d validation users, %d items",
             backbone, representation, len(seqs), len(val), n_items)
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=VAL_METRIC, mode="max",
                           save_top_k=1, save_last=False, enable_version_counter=False,
                           save_weights_only=True)
    timer = EpochTimer()
    trainer = L.Trainer(
        max_epochs=tc.max_epochs, accelerator=accelerator(tc.device), devices=tc.devices,
        callbacks=[EarlyStopping(VAL_METRIC, mode="max", patience=tc.patience), ckpt, timer],
        check_val_every_n_epoch=tc.val_every, logger=logger if logger is not None else False,
        deterministic=True, enable_progress_bar=progress, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False)  # LengthBucketSampler shards by rank itself
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - t0
    best = SeqRecModule.load_from_checkpoint(ckpt.best_model_path, content=content, map_location="cpu")
    best_epoch = int(torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["epoch"])
    facts = {
        "best_val_ndcg@10": round(float(ckpt.best_model_score), 6),
        "best_epoch": best_epoch + 1,
        "epochs": trainer.current_epoch,
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(float(np.median(timer.seconds)), 2) if timer.seconds else None,
        "train_sequences": len(seqs),
        "parameters": sum(p.numel() for p in best.parameters() if p.requires_grad),
    }
    return best, facts


def refit(backbone: str, representation: str, cfg: SeqRecConfig, train_full: pd.DataFrame, n_items: int,
          content: np.ndarray | None, epochs: int, logger=None, progress: bool = True) -> SeqRecModule:
    """Retrain from scratch on train + validation period for the epoch count chosen on validation.

    Used with split.retrain_on_validation: validation can no longer select the checkpoint (its
    targets are in the training data), so the number of epochs found by `fit` is reused.
    """
    tc = cfg.train
    L.seed_everything(tc.seed, workers=True, verbose=False)
    module = SeqRecModule(backbone, representation, n_items, asdict(cfg.model), asdict(tc), cfg.top_k, content)
    seqs = training_sequences(train_full, cfg.model.max_len)
    loader = _train_loader(seqs, tc)
    module.positions_per_batch = _positions_per_batch(seqs, tc)
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator(tc.device), devices=tc.devices,
                        logger=logger if logger is not None else False, deterministic=True,
                        enable_progress_bar=progress, enable_model_summary=False, enable_checkpointing=False,
                        limit_val_batches=0, use_distributed_sampler=False)
    trainer.fit(module, loader)
    return module
