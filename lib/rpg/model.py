"""RPG (Hou et al., KDD 2025): a GPT-2 decoder that predicts all m digits of the next item's long ID at once.

Items are m unordered digits (product-quantisation codes, lib/tokenizers/pq.py), digit j of item i
being c_ij in [0, K). Digit j's K codes have their own embedding rows, and an item's input vector
is the mean of its m digit embeddings, so every item, cold or not, is represented through content
codes only. After the decoder, one projection head per digit maps the hidden state h to g_j; the
logit of code k of digit j is cos(g_j, e_jk) / temperature, with the digit embeddings e shared
between input and output. Training is multi-token prediction: one cross-entropy per digit
against the next item's code (averaged over digits, summed over positions). An item's score is
the sum of its digits' log-probabilities, computed exactly for every item of the catalogue (m
gathers per user), so no beam search is needed at this catalogue size.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2Model

from lib.rpg.config import RPGModelConfig

PAD_TOKEN = 0  # digit token of the padding item: excluded from the mean, zero vector


def digit_tokens(codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """(N+1, m) digits, row 0 = padding (-1) -> (N+1, m) tokens 1 + j*K + c; padding row -> PAD_TOKEN."""
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or len(codes) < 2:
        raise ValueError(f"codes have shape {codes.shape}; expected (n_items + 1, digits)")
    items = codes[1:]
    if items.min() < 0 or items.max() >= codebook_size:
        raise ValueError(f"digits must lie in [0, {codebook_size}) for every item 1..N")
    tokens = 1 + np.arange(codes.shape[1]) * codebook_size + codes
    tokens[0] = PAD_TOKEN
    return tokens


class RPG(nn.Module):
    def __init__(self, codes: np.ndarray, codebook_size: int, cfg: RPGModelConfig):
        """codes (N+1, m): digit c_ij of item i (row 0 = padding); codebook_size K codes per digit."""
        super().__init__()
        self.cfg = cfg
        self.n_items, self.n_digits = codes.shape[0] - 1, codes.shape[1]
        self.codebook_size = codebook_size
        self.register_buffer("tokens", torch.from_numpy(digit_tokens(codes, codebook_size)))  # (N+1, m)
        self.register_buffer("digits", torch.from_numpy(np.asarray(codes[1:], dtype=np.int64)))  # (N, m)
        d, m = cfg.d_model, self.n_digits
        self.embed = nn.Embedding(1 + m * codebook_size, d, padding_idx=PAD_TOKEN)
        nn.init.normal_(self.embed.weight, std=0.02)
        with torch.no_grad():
            self.embed.weight[PAD_TOKEN].zero_()
        config = GPT2Config(vocab_size=1, n_positions=cfg.max_len, n_embd=d, n_layer=cfg.n_layers,
                            n_head=cfg.n_heads, n_inner=cfg.d_ff, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout,
                            attn_pdrop=cfg.dropout, use_cache=False)
        self.gpt = GPT2Model(config)
        self.gpt.wte.weight.requires_grad_(False)  # inputs_embeds replaces the token table
        self.input_scale = float(np.sqrt(d))
        self.heads = nn.Parameter(torch.eye(d).repeat(m, 1, 1) + 0.02 * torch.randn(m, d, d))  # (m, d, d)
        self.head_bias = nn.Parameter(torch.zeros(m, d))

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """items (...) ids -> (..., d): the mean of each item's digit embeddings (padding item -> 0)."""
        flat = self.tokens[items.reshape(-1)]  # (X, m)
        out = F.embedding_bag(flat, self.embed.weight, mode="mean", padding_idx=PAD_TOKEN)
        return out.view(*items.shape, -1)

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) right-padded item ids -> (B, L, d); causal, so padding never reaches a real position.

        The digit mean is scaled by sqrt(d) (as SASRec scales its item embeddings): a mean of m small
        random vectors is ~sqrt(m) times shorter than one, and unscaled it is drowned by GPT-2's
        position embeddings (measured on Beauty: the loss stayed at the digits' marginal entropy).
        """
        return self.gpt(inputs_embeds=self.item_vectors(seq) * self.input_scale).last_hidden_state

    def digit_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (M, d) -> (M, m, K): cosine of each digit head's output with that digit's code embeddings / T."""
        g = F.normalize(torch.einsum("md,jde->mje", h, self.heads) + self.head_bias, dim=-1)  # (M, m, d)
        codes = F.normalize(self.embed.weight[1:].view(self.n_digits, self.codebook_size, -1), dim=-1)  # (m, K, d)
        return torch.einsum("mjd,jkd->mjk", g, codes) / self.cfg.temperature

    def loss(self, inp: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Per-digit cross-entropy of the next item at real positions (tgt > 0): mean over digits, summed
        over positions (the trainer divides by a constant, as SeqRec.loss)."""
        mask = tgt > 0
        logits = self.digit_logits(self.hidden(inp)[mask])  # (M, m, K)
        target = self.digits[tgt[mask] - 1]  # (M, m)
        ce = F.cross_entropy(logits.float().reshape(-1, self.codebook_size), target.reshape(-1), reduction="sum")
        return ce / self.n_digits

    @torch.no_grad()
    def score_last(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores (B, N+1) of every item after the last real position: the sum of its digits'
        log-probabilities; column 0 (padding) = -inf."""
        h = self.hidden(seq)
        last = h[torch.arange(seq.shape[0], device=seq.device), lengths - 1]  # (B, d)
        logp = torch.log_softmax(self.digit_logits(last).float(), dim=-1)  # (B, m, K)
        scores = torch.zeros(seq.shape[0], self.n_items + 1, device=seq.device)
        for j in range(self.n_digits):
            scores[:, 1:] += logp[:, j, self.digits[:, j]]
        scores[:, 0] = float("-inf")
        return scores
