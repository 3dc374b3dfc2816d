"""The training settings every family has (params `train` + each family's `train` keys): lib/models TrainConfig,
lib/sid SidTrainConfig and lib/rpg RPGTrainConfig inherit them. Apart from lib/config.py so that a change to
training settings leaves the data stages (parse, split, embed, ...) and their dvc.lock entries as they are.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TrainBase:
    """The training settings every family has (params `train` holds the shared values; each family's `train`
    section adds its own keys and may set these): lib/models TrainConfig, lib/sid SidTrainConfig, lib/rpg
    RPGTrainConfig. Defaults equal params.yaml (tests/test_defaults.py)."""
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128  # users per batch, each batch padded to its own longest sequence
    length_pool: int = 4  # batches per length-sorted pool ("sortish" batching, lib/models/data.py); 1 = plain shuffle
    max_epochs: int = 200
    patience: int = 8  # validations without a better validation NDCG@10 before stopping
    val_every: int = 1  # validate every this many epochs
    seed: int = 42
    device: Literal["auto", "cpu", "gpu"] = "auto"  # auto = a GPU when one exists
    devices: int = 1  # GPUs (DDP when > 1)
    num_workers: int = 0  # data-loader workers
    threads: int = 1  # CPU threads for torch (results depend on it); 0 = torch's default
    # learning rate over the optimizer steps of max_epochs: linear warm-up, then constant or cosine to 0
    # (lib/trainer.py lr_factor); early stopping still picks the checkpoint on validation
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = 0

    def validate(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError("train.warmup_steps: must be >= 0")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1 or self.val_every < 1:
            raise ValueError("train: batch_size, max_epochs, patience and val_every must be >= 1")
        if self.lr <= 0:
            raise ValueError(f"train.lr: must be > 0, got {self.lr}")
        if self.threads < 0 or self.devices < 1 or self.num_workers < 0:
            raise ValueError("train: threads and num_workers must be >= 0, devices >= 1")
