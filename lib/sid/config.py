"""Typed config of the GPT-2 Semantic-ID generator (params `train` + `gpt2_sid`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lib.train_config import TrainBase


@dataclass(frozen=True)
class SidModelConfig:
    d_model: int = 128  # GPT-2 width (TIGER: 128)
    n_layers: int = 2  # transformer blocks (TIGER: 4 encoder + 4 decoder)
    n_heads: int = 4
    d_ff: int = 256  # feed-forward width
    dropout: float = 0.2
    max_len: int = 20  # history items the model reads (TIGER protocol: 20); each is n_levels tokens
    user_buckets: int = 0  # hashed user tokens prepended to the sequence (TIGER: 2000); 0 = none
    trie_softmax: bool = True  # each code's softmax covers only the codes that continue its prefix to a real item

    def validate(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError(f"model.d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.max_len < 1 or self.n_layers < 1 or self.d_ff < 1:
            raise ValueError("model: max_len, n_layers and d_ff must be >= 1")
        if self.user_buckets < 0:
            raise ValueError("model.user_buckets: must be >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("model.dropout: must be in [0, 1)")


@dataclass(frozen=True)
class SidTrainConfig(TrainBase):
    """The generator's training (params `train` + `gpt2_sid.train`)."""
    lr: float = 2e-3
    max_epochs: int = 100
    patience: int = 5  # validations without a better NDCG@10 before stopping
    val_every: int = 2  # validate (beam search) every this many epochs
    val_users: int = 1000  # fixed random subset of validation users decoded for early stopping; 0 = all
    # early stopping on: ndcg = beam-search NDCG@10 of the val_users (the lists' own metric); target_nll = the
    # teacher-forced -log P(target's codes | history) of the val_users (one forward pass, no search; min)
    monitor: Literal["ndcg", "target_nll"] = "ndcg"
    # bf16-mixed: bfloat16 autocast in training and in every decoding (validation and test alike);
    # 32-true: float32 throughout
    precision: Literal["32-true", "bf16-mixed"] = "32-true"

    def validate(self) -> None:
        super().validate()
        if self.val_users < 0:
            raise ValueError("train.val_users: must be >= 0")


@dataclass(frozen=True)
class DecodeConfig:
    beam_width: int = 100  # beams = distinct items returned per user; must be >= top_k
    batch_size: int = 16  # users decoded together (cache memory ~ batch x beams x tokens)
    exclude_seen: bool = True  # never generate an item of the user's input
    # TIGER's cold-start rule, a list-injection rule (an analysis, never a leaderboard model; run.json `rules`):
    # every n-th rank holds an item of the list's knowable cold pool (lib/cold.py); 0 = off
    cold_every: int = 0
    cold_prefix: int = 2  # ... one sharing its first this-many codes with a generated item, in beam order

    def validate(self) -> None:
        if self.beam_width < 1 or self.batch_size < 1:
            raise ValueError("decode: beam_width and batch_size must be >= 1")
        if self.cold_every < 0 or self.cold_prefix < 1:
            raise ValueError("decode: cold_every must be >= 0 and cold_prefix >= 1")


@dataclass(frozen=True)
class GPT2SidConfig:
    model: SidModelConfig = field(default_factory=SidModelConfig)
    train: SidTrainConfig = field(default_factory=SidTrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    top_k: int = 100  # items written per user

    def validate(self) -> None:
        if self.top_k < 1:
            raise ValueError("top_k: must be >= 1")
        if self.decode.beam_width < self.top_k:
            raise ValueError(f"decode.beam_width: {self.decode.beam_width} < top_k={self.top_k}; "
                             "each beam yields one item")
