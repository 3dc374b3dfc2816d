"""Lightning plumbing shared by every trained model: device choice, early stopping, timing, peak memory.

Both model families (lib/models: ID/content recommenders, lib/sid: the Semantic-ID generator)
select their best checkpoint on the same validation metric with the same Trainer setup; this
module is that setup, so a change to it (a callback, a flag) reaches both.
"""
from __future__ import annotations

import logging
import math
import resource
import shutil
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from lib.io import atomic_path

log = logging.getLogger(__name__)
VAL_METRIC = "val/ndcg@10"  # early-stopping metric, computed exactly as the evaluator does on test


def accelerator(device: str) -> str:
    """`auto` -> gpu when one exists, else cpu; anything else is passed through."""
    if device == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    return device


def torch_device(device: str) -> str:
    """The torch device string of a params `device` value (for inference outside Lightning)."""
    return "cuda" if accelerator(device) == "gpu" else "cpu"


def native_bfloat16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has bfloat16 arithmetic (x86: AVX-512 BF16 or AMX; Arm: BF16), read from
    /proc/cpuinfo (or the given text); True where that cannot be read, so no false alarm. Without it
    torch emulates bfloat16 matmuls: measured 6.5x slower than float32 on an AVX2 EPYC (README, Reproducibility)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    return not flags or bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def warn_if_emulated_bfloat16(tc) -> None:
    """Log a warning when a CPU run asks for bfloat16 (ce_dtype, or precision bf16-mixed) on a CPU without it."""
    wants = getattr(tc, "ce_dtype", None) == "bfloat16" or getattr(tc, "precision", None) == "bf16-mixed"
    if wants and accelerator(tc.device) == "cpu" and not native_bfloat16():
        log.warning("this CPU has no bfloat16 arithmetic (no avx512_bf16 / amx_bf16 flag): torch emulates it, "
                    "several times slower than float32 (measured 6.5x on an AVX2 EPYC). Consider float32 "
                    "(train.ce_dtype / train.precision): it trains another model, so re-run what you compare with")


class EpochTimer(Callback):
    """Wall seconds of every epoch (training + its validation), and one progress line per epoch.

    Lightning validates inside the training epoch, so `on_train_epoch_end` sees both. The line gives
    the best validation so far and an upper bound of the time left: early stopping ends the run at
    the latest `patience` validations after the best one (or at max_epochs).
    """

    def __init__(self, patience: int = 0, val_every: int = 1, monitor: str = VAL_METRIC, mode: str = "max"):
        self.seconds: list[float] = []
        self.patience, self.val_every, self.monitor = patience, val_every, monitor
        self.sign = 1 if mode == "max" else -1
        self.best, self.best_epoch = float("-inf"), 0  # best of sign x metric

    def on_train_epoch_start(self, trainer, module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self._t)
        m = trainer.callback_metrics
        epoch = trainer.current_epoch + 1
        validated = epoch % self.val_every == 0 and self.monitor in m  # else the metric is a stale one
        if validated and self.sign * float(m[self.monitor]) > self.best:
            self.best, self.best_epoch = self.sign * float(m[self.monitor]), epoch
        # the first validation always sets a best; `patience` validations without a better one end the run
        anchor = self.best_epoch or self.val_every
        last = min(trainer.max_epochs, anchor + self.patience * self.val_every) if self.patience \
            else trainer.max_epochs
        eta = max(0, last - epoch) * float(np.median(self.seconds))
        val = f"{self.monitor} {float(m[self.monitor]):.5f}" if validated else "not validated"
        best = f"best {self.sign * self.best:.5f} at {self.best_epoch}" if self.best_epoch else "no validation yet"
        log.info("epoch %d/%d: train/loss %.4f, %s (%s) %.1f s; stops by epoch %d, <= %.0f s left", epoch,
                 trainer.max_epochs, float(m.get("train/loss", float("nan"))), val, best, self.seconds[-1], last, eta)


def lr_factor(step: int, warmup: int, total: int, schedule: str) -> float:
    """Multiplier of the peak lr at optimizer step `step`: linear warm-up over `warmup` steps, then constant or
    cosine down to 0 at `total` steps (max_epochs x batches per epoch: a fixed budget, whatever early stopping does)."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def with_schedule(optimizer: torch.optim.Optimizer, tc, total_steps: int):
    """What a LightningModule's configure_optimizers returns: the optimizer alone for a constant rate without
    warm-up (train.schedule constant, warmup_steps 0), else with a per-step LambdaLR of `lr_factor`."""
    if tc.schedule == "constant" and not tc.warmup_steps:
        return optimizer
    sched = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, tc.warmup_steps, total_steps, tc.schedule))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def seed_and_pin(seed: int, threads: int) -> None:
    """Seed Python, numpy and torch (dataloader workers too) and fix torch's CPU thread count (0 = leave it):
    what makes a training reproducible. Called by the training road (lib/road.py) right before each fit."""
    L.seed_everything(seed, workers=True, verbose=False)
    if threads:
        torch.set_num_threads(threads)


def train_epochs(module: L.LightningModule, loader, tc, epochs: int, progress: bool = True) -> L.LightningModule:
    """Train `module` for exactly `epochs` epochs, nothing validated or checkpointed (a refit on train + the
    validation period, whose epoch count validation chose). `tc`: a train config (device, devices)."""
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator(tc.device), devices=tc.devices, logger=False,
                        deterministic=True, enable_progress_bar=progress, enable_model_summary=False,
                        enable_checkpointing=False, limit_val_batches=0, use_distributed_sampler=False)
    trainer.fit(module, loader)
    return module


def fit_early_stopping(module: L.LightningModule, train_loader, val_loader, tc, ckpt_dir: str,
                       logger=None, progress: bool = True, monitor: str = VAL_METRIC,
                       mode: str = "max") -> tuple[str, dict]:
    """Train `module` until the validation metric `monitor` (default NDCG@10) stops improving for `tc.patience`
    validations (mode max: larger is better; min: smaller, e.g. a validation loss).

    `tc` is a train config (max_epochs, patience, val_every, device, devices). Returns the best
    checkpoint's path and the facts every training stage reports: `best_val_ndcg@10`, or, for another
    monitor, `monitor` and `best_<monitor with _ for />`.
    """
    ckpt = ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor=monitor, mode=mode, save_top_k=1,
                           save_last=False, enable_version_counter=False, save_weights_only=True)
    timer = EpochTimer(tc.patience, tc.val_every, monitor, mode)
    warn_if_emulated_bfloat16(tc)
    trainer = L.Trainer(
        max_epochs=tc.max_epochs, accelerator=accelerator(tc.device), devices=tc.devices,
        callbacks=[EarlyStopping(monitor, mode=mode, patience=tc.patience), ckpt, timer],
        check_val_every_n_epoch=tc.val_every, logger=logger if logger is not None else False,
        deterministic=True, enable_progress_bar=progress, enable_model_summary=False,
        num_sanity_val_steps=0, use_distributed_sampler=False)  # the length-bucket sampler shards by rank itself
    t0 = time.perf_counter()
    trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - t0
    epoch = int(torch.load(ckpt.best_model_path, map_location="cpu", weights_only=False)["epoch"])
    best = {"best_val_ndcg@10": round(float(ckpt.best_model_score), 6)} if monitor == VAL_METRIC else \
        {"monitor": monitor, f"best_{monitor.replace('/', '_')}": round(float(ckpt.best_model_score), 6)}
    return ckpt.best_model_path, best | {
        "best_epoch": epoch + 1,
        "epochs": trainer.current_epoch,
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(float(np.median(timer.seconds)), 2) if timer.seconds else None,
    }


def publish_checkpoint(ckpt_dir: Path, model_dir: Path) -> None:
    """Copy <ckpt_dir>/best.ckpt atomically to <model_dir>/model.ckpt, then drop the scratch directory."""
    model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(model_dir / "model.ckpt") as tmp:
        shutil.copyfile(ckpt_dir / "best.ckpt", tmp)
    shutil.rmtree(ckpt_dir, ignore_errors=True)


def peak_memory_mb(device: str) -> float:
    """Peak GPU memory allocated (cuda) or peak resident memory of this process (cpu), in MiB."""
    if device == "cuda":
        return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine(device: str) -> dict:
    """What a run's speed figures depend on: the CPU (model name, the kernels torch picked, bfloat16 arithmetic),
    torch's thread count, and the GPU when one is used. Training facts carry it, so figures of runs trained on
    different machines are told apart."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        cpuinfo = ""
    names = [v.strip() for k, _, v in (line.partition(":") for line in cpuinfo.splitlines())
             if k.strip() == "model name"]
    facts = {"cpu": names[0] if names else "unknown", "cpu_capability": torch.backends.cpu.get_cpu_capability(),
             "cpu_bf16": native_bfloat16(cpuinfo) if cpuinfo else None, "threads": torch.get_num_threads()}
    if device == "cuda":
        facts["gpu"] = torch.cuda.get_device_name()
    return facts
