"""RPG (Hou et al., KDD 2025): a GPT-2 decoder that predicts all m digits of the next item's long ID at once.

Items are m unordered digits (product-quantisation codes, lib/tokenizers/pq.py), digit j of item i
being c_ij in [0, K). Digit j's K codes have their own embedding rows, and an item's input vector
is the mean of its m digit embeddings, so every item, cold or not, is represented through content
codes only. After the decoder, one residual head per digit maps the hidden state h to
g_j = h + SiLU(W_j h + b_j) (W_j = 0 at init, so every head starts as the identity; the paper's code);
the logit of code k of digit j is cos(g_j, e_jk) / temperature, with the digit embeddings e shared
between input and output. Training is multi-token prediction: one cross-entropy per digit
against the next item's code (averaged over digits, summed over positions). An item's score is
the sum of its digits' log-probabilities, computed exactly for every item of the catalogue (m
gathers per user, done as one embedding-bag over the digit log-probabilities), so no beam search is
needed at this catalogue size.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint
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


def codebook_table(centroids: np.ndarray, d_model: int, row_norm: float) -> torch.Tensor:
    """(m, K, d_sub) product-quantiser centroids -> (m*K, d_model) digit embeddings: code k of digit j is
    centroid (j, k) in dims [j*d_sub, (j+1)*d_sub) and 0 elsewhere, all rows scaled by one factor to a mean
    norm of `row_norm`. The mean of an item's m rows is then its quantised content vector / m (times that
    factor): items start where the tokenizer put them, and digit j's output logits compare block j."""
    c = torch.as_tensor(np.asarray(centroids), dtype=torch.float32)
    m, k, d_sub = c.shape
    if m * d_sub != d_model:
        raise ValueError(f"model.digit_init: codebook needs levels x sub-vector dims = d_model; the tokenizer has "
                         f"{m} x {d_sub} = {m * d_sub}, model.d_model is {d_model}")
    table = torch.zeros(m, k, d_model)
    for j in range(m):
        table[j, :, j * d_sub:(j + 1) * d_sub] = c[j]
    table = table.view(m * k, d_model)
    return table * (row_norm / table.norm(dim=1).mean().clamp_min(1e-12))


class RPG(nn.Module):
    def __init__(self, codes: np.ndarray, codebook_size: int, cfg: RPGModelConfig,
                 centroids: np.ndarray | None = None):
        """codes (N+1, m): digit c_ij of item i (row 0 = padding); codebook_size K codes per digit;
        centroids (m, K, d_sub): the tokenizer's, for model.digit_init = codebook."""
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
            if cfg.digit_init == "codebook":
                if centroids is None:
                    raise ValueError("model.digit_init: codebook needs the tokenizer's centroids")
                if tuple(np.shape(centroids)[:2]) != (m, codebook_size):
                    raise ValueError(f"model.digit_init: centroids of shape {np.shape(centroids)} do not match "
                                     f"{m} digits x {codebook_size} codes")
                self.embed.weight[1:] = codebook_table(centroids, d, 0.02 * np.sqrt(d))  # random init's norm
        config = GPT2Config(vocab_size=1, n_positions=cfg.max_len, n_embd=d, n_layer=cfg.n_layers,
                            n_head=cfg.n_heads, n_inner=cfg.d_ff, resid_pdrop=cfg.resid_dropout,
                            embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, use_cache=False)
        self.gpt = GPT2Model(config)
        self.gpt.wte.weight.requires_grad_(False)  # inputs_embeds replaces the token table
        self.input_scale = float(np.sqrt(d)) if cfg.input_scale else 1.0
        self.heads = nn.Parameter(torch.zeros(m, d, d))  # (m, d_in, d_out): W_j^T of g_j = h + SiLU(W_j h + b_j)
        self.head_bias = nn.Parameter(torch.zeros(m, d))

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """items (...) ids -> (..., d): the mean of each item's digit embeddings (padding item -> 0)."""
        flat = self.tokens[items.reshape(-1)]  # (X, m)
        out = F.embedding_bag(flat, self.embed.weight, mode="mean", padding_idx=PAD_TOKEN)
        return out.view(*items.shape, -1)

    def hidden(self, seq: torch.Tensor) -> torch.Tensor:
        """seq (B, L) right-padded item ids -> (B, L, d); causal, so padding never reaches a real position.

        With model.input_scale the digit mean is scaled by sqrt(d) (as SASRec scales its item embeddings):
        a mean of m small random vectors is ~sqrt(m) times shorter than one, and unscaled it is drowned by
        GPT-2's position embeddings early in training (the paper's code does not scale).
        """
        return self.gpt(inputs_embeds=self.item_vectors(seq) * self.input_scale).last_hidden_state

    def digit_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h (M, d) -> (m, M, K): cosine of each digit head's output with that digit's code embeddings / T."""
        x = h.unsqueeze(0)  # (1, M, d)
        g = x + F.silu(torch.matmul(x, self.heads) + self.head_bias[:, None])  # (m, M, d)
        g = F.normalize(g, dim=-1) / self.cfg.temperature  # the temperature on (m, M, d), not on (m, M, K)
        codes = F.normalize(self.embed.weight[1:].view(self.n_digits, self.codebook_size, -1), dim=-1)  # (m, K, d)
        return torch.bmm(g, codes.transpose(1, 2))  # (m, M, K)

    def loss(self, inp: torch.Tensor, tgt: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        """Per-digit cross-entropy of the next item at real positions (tgt > 0): mean over digits, summed
        over positions (the trainer divides by a constant, as SeqRec.loss).

        chunk > 0: the heads, logits and cross-entropy of `chunk` positions at a time, each recomputed in
        backward (activation checkpointing): the same value and gradients, with the (digits, positions, K)
        tensors of one chunk alive instead of the whole batch's (peak memory; some recomputation)."""
        mask = tgt > 0
        h = self.hidden(inp)[mask]  # (M, d)
        target = self.digits[tgt[mask] - 1].T  # (m, M)
        if chunk <= 0 or h.shape[0] <= chunk:
            return self._digit_ce(h, target)
        return sum(checkpoint(self._digit_ce, h[s:s + chunk], target[:, s:s + chunk], use_reentrant=False)
                   for s in range(0, h.shape[0], chunk))

    def _digit_ce(self, h: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = self.digit_logits(h)  # (m, M, K)
        ce = F.cross_entropy(logits.float().reshape(-1, self.codebook_size), target.reshape(-1), reduction="sum")
        return ce / self.n_digits

    @torch.no_grad()
    def score_last(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Scores (B, N+1) of every item after the last real position: the sum of its digits'
        log-probabilities; column 0 (padding) = -inf."""
        h = self.hidden(seq)
        last = h[torch.arange(seq.shape[0], device=seq.device), lengths - 1]  # (B, d)
        logp = torch.log_softmax(self.digit_logits(last).float(), dim=-1)  # (m, B, K)
        # item i's score = sum_j logp[j, :, c_ij]: a sum-bag over the (m*K, B) table, rows = digit tokens - 1
        table = logp.permute(0, 2, 1).reshape(-1, seq.shape[0])  # (m*K, B)
        items = F.embedding_bag(self.tokens[1:] - 1, table, mode="sum")  # (N, B)
        pad = torch.full((seq.shape[0], 1), float("-inf"), device=seq.device)
        return torch.cat([pad, items.T], dim=1)
