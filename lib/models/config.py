"""Typed configs of the ID/content sequential recommenders (params `train` + `seqrec` + `sasrec` or `gpt2`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lib.train_config import TrainBase

Representation = Literal["id", "content_init", "content", "content_plus_id", "sid_unigram", "sid_bigram", "sid_plus_id"]


@dataclass(frozen=True)
class ModelConfig:
    d_model: int = 64  # hidden width = item embedding width
    n_layers: int = 3  # transformer blocks
    n_heads: int = 1  # attention heads
    dropout: float = 0.5  # on embeddings, attention and feed-forward
    max_len: int = 50  # history length the model reads (most recent items)
    adapter_hidden: int = 0  # content adapter: 0 = linear map, > 0 = MLP of this width
    zero_cold_ids: bool = True  # ID rows / code n-grams only items without training interaction use stay 0
    code_pool: Literal["sum", "mean"] = "sum"  # sid_*: the item vector = sum or mean of its code embeddings
    # content_plus_id / sid_plus_id: each training step drops each item's ID part with this probability, in the
    # inputs and the output table alike, so the content/code part learns to score an item alone (DropoutNet)
    id_dropout: float = 0.0

    def validate(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.max_len < 2:
            raise ValueError("model.max_len: must be >= 2")
        if self.adapter_hidden < 0:
            raise ValueError("model.adapter_hidden: must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("model.dropout: must be in [0, 1)")
        if not 0.0 <= self.id_dropout < 1.0:
            raise ValueError(f"model.id_dropout: must be in [0, 1), got {self.id_dropout}")


@dataclass(frozen=True)
class TrainConfig(TrainBase):
    """The rankers' training (params `train` + `seqrec.train`)."""
    loss: Literal["ce", "sampled", "mixed", "bce"] = "ce"  # ce = full softmax over all items (SASRec+); sampled =
    # softmax over the target + `negatives` uniform negatives shared by the batch; mixed = over the batch's targets +
    # `negatives` uniform items, logQ-corrected (lib/models/losses.py); bce = original SASRec, 1 negative
    negatives: int = 1024  # loss: sampled, mixed (uniform draws)
    ce_chunk: int = 128  # positions per chunk of the full-softmax loss (lib/models/losses.py); 0 = all at once
    ce_dtype: Literal["float32", "bfloat16"] = "float32"  # input type of the loss's matmuls (softmax stays float32)

    def validate(self) -> None:
        super().validate()
        if self.loss == "sampled" and self.negatives < 1:
            raise ValueError(f"train.negatives: must be >= 1 with loss sampled, got {self.negatives}")
        if self.loss == "mixed" and self.negatives < 0:
            raise ValueError(f"train.negatives: must be >= 0 with loss mixed, got {self.negatives}")


@dataclass(frozen=True)
class SeqRecConfig:
    """A ranker run's config: the model (its backbone's section), its training and the output size."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    top_k: int = 100  # recommendations written per user (before seen-item filtering)
    # shifts of cold items' scores, in the user's score sd, tried on validation after training; the best one
    # decodes validation and test (lib/models/recommend.py). (0.0,) = no shift, no search
    cold_shift: tuple[float, ...] = (0.0,)

    def validate(self) -> None:
        if self.top_k < 1:
            raise ValueError("top_k: must be >= 1")
        if not self.cold_shift:
            raise ValueError("cold_shift: must list at least one shift (0.0 = none)")
