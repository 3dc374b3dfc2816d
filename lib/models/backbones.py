"""Sequence encoders: SASRec (Kang & McAuley 2018) and Hugging Face GPT-2.

Both map item embeddings (B, L, d) to hidden states (B, L, d) under causal attention.
Sequences are right-padded: a real position only attends to earlier positions, which
are all real, so no key-padding mask is needed and SDPA's causal fast path applies.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2Model

from lib.models.config import ModelConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_heads, c // self.n_heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class SASRecBlock(nn.Module):
    """Pre-LN block; SASRec's point-wise feed-forward keeps the width d (as in the paper)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.ffn = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_model), nn.ReLU(), nn.Dropout(cfg.dropout),
                                 nn.Linear(cfg.d_model, cfg.d_model))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.ffn(self.ln2(x)))


class SASRec(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.scale = math.sqrt(cfg.d_model)  # SASRec scales item embeddings by sqrt(d)
        self.pos = nn.Embedding(cfg.max_len, cfg.d_model)
        nn.init.normal_(self.pos.weight, std=0.02)  # N(0, 1) default would drown the item signal
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(SASRecBlock(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(x.shape[1], device=x.device)
        x = self.drop(x * self.scale + self.pos(pos))  # (B, L, d)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)


class GPT2(nn.Module):
    """The Hugging Face GPT-2 stack fed with our item embeddings (its token table is unused)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        config = GPT2Config(
            vocab_size=1, n_positions=cfg.max_len, n_embd=cfg.d_model, n_layer=cfg.n_layers,
            n_head=cfg.n_heads, n_inner=4 * cfg.d_model, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout, use_cache=False)
        self.gpt = GPT2Model(config)
        self.gpt.wte.weight.requires_grad_(False)  # inputs_embeds replaces the token table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.gpt(inputs_embeds=x).last_hidden_state  # (B, L, d), ends with GPT-2's ln_f


BACKBONES = {"sasrec": SASRec, "gpt2": GPT2}
