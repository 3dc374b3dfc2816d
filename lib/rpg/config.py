"""Typed config of RPG, the parallel long-Semantic-ID generator (params `train` + `rpg`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lib.train_config import TrainBase


@dataclass(frozen=True)
class RPGModelConfig:
    d_model: int = 128  # decoder width = digit embedding width (paper: 448)
    n_layers: int = 2  # GPT-2 blocks (paper: 2)
    n_heads: int = 4  # (paper: 4)
    d_ff: int = 512  # feed-forward width (paper: 1024)
    dropout: float = 0.5  # on the input embeddings and attention weights (paper: 0.5)
    resid_dropout: float = 0.0  # on each block's attention and FFN outputs (paper's code: 0.0)
    input_scale: bool = True  # item vector = digit mean x sqrt(d_model) (false: the paper's unscaled mean)
    # digit embeddings at init: random (the paper) | codebook = the tokenizer's centroids, digit j's in block j
    # of the d_model dims (pq/opq with levels x sub-vector dims = d_model: opq_w128 at d_model 128; ours)
    digit_init: Literal["random", "codebook"] = "codebook"
    max_len: int = 50  # history items read (paper: 50)
    temperature: float = 0.03  # digit logits = cosine(head output, digit embedding) / temperature (paper: 0.03)

    def validate(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.max_len < 2 or self.n_layers < 1 or self.d_ff < 1:
            raise ValueError("model: max_len must be >= 2, n_layers and d_ff >= 1")
        for name in ("dropout", "resid_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"model.{name}: must be in [0, 1), got {getattr(self, name)}")
        if self.temperature <= 0:
            raise ValueError(f"model.temperature: must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class RPGTrainConfig(TrainBase):
    """RPG's training (params `train` + `rpg.train`)."""
    lr: float = 0.003  # AdamW peak learning rate (paper: 0.01 with 10,000 warm-up steps over 160 epochs)
    grad_clip: float = 1.0  # max global gradient norm (paper's code: 1.0); 0 = off
    warmup_steps: int = 500  # linear warm-up, then cosine decay to 0 at max_epochs (schedule: cosine)
    schedule: Literal["cosine", "constant"] = "cosine"
    batch_size: int = 256  # users per batch (paper: 256)
    max_epochs: int = 25  # the cosine schedule ends here
    patience: int = 6  # validations without a better NDCG@10
    precision: Literal["32-true", "bf16-mixed"] = "32-true"  # bf16-mixed: autocast in training and scoring
    loss_chunk: int = 0  # > 0: the digit loss over this many positions at a time, recomputed in backward (memory)

    def validate(self) -> None:
        super().validate()
        if self.grad_clip < 0:
            raise ValueError(f"train.grad_clip: must be >= 0 (0 = off), got {self.grad_clip}")
        if self.loss_chunk < 0:
            raise ValueError(f"train.loss_chunk: must be >= 0 (0 = the whole batch at once), got {self.loss_chunk}")


@dataclass(frozen=True)
class RPGConfig:
    model: RPGModelConfig = field(default_factory=RPGModelConfig)
    train: RPGTrainConfig = field(default_factory=RPGTrainConfig)
    top_k: int = 100  # items written per user (before seen-item filtering)

    def validate(self) -> None:
        if self.top_k < 1:
            raise ValueError("top_k: must be >= 1")
