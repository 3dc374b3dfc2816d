"""GPT-2 over Semantic-ID tokens (TIGER's generative retrieval, as a decoder-only model).

A user's sequence is [bos, (user token)] followed by the C tokens of each history item; the
model learns next-token prediction at every item token, so one pass trains every prefix of
the history, as SASRec does. The softmax at a position is restricted to the token range of
the code column it must produce (the trie-constrained decoder only ever asks for that range),
so the model spends no capacity learning which column comes next. With `trie_softmax` it is
restricted further, to the codes that continue the item's prefix to a real item (the prefix
trie's children), so the model's item probabilities sum to one over the catalogue instead of
leaking mass to code tuples that name no item, and training scores exactly the choices the
constrained beam search makes.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel

from lib.sid.config import SidModelConfig


class SidGPT2(nn.Module):
    def __init__(self, vocab_size: int, prefix_len: int, column_masks: np.ndarray, cfg: SidModelConfig,
                 bos: int = 1, eos: int = 2):
        """column_masks (C, V) bool: the tokens of each code column (SidVocab.column_masks)."""
        super().__init__()
        self.cfg = cfg
        self.n_levels = column_masks.shape[0]
        # the longest sequence read is a training one: prefix + (max_len + 1) items, minus the last token
        config = GPT2Config(
            vocab_size=vocab_size, n_positions=prefix_len + (cfg.max_len + 1) * self.n_levels, n_embd=cfg.d_model,
            n_layer=cfg.n_layers, n_head=cfg.n_heads, n_inner=cfg.d_ff, resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, tie_word_embeddings=True,
            bos_token_id=bos, eos_token_id=eos, pad_token_id=None)
        self.lm = GPT2LMHeadModel(config)
        bias = torch.full(column_masks.shape, float("-inf"))
        bias[torch.from_numpy(column_masks)] = 0.0
        self.register_buffer("column_bias", bias, persistent=False)  # (C, V)
        self.offsets = column_masks.argmax(axis=1).tolist()  # first token of each code column
        self.sizes = column_masks.sum(axis=1).tolist()

    @property
    def n_positions(self) -> int:
        return self.lm.config.n_positions

    def loss(self, inp: torch.Tensor, tgt: torch.Tensor, col: torch.Tensor, node: torch.Tensor | None = None,
             children: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Summed cross-entropy of the next token at item-token targets.

        inp, tgt (B, T) right-padded tokens (tgt = inp shifted by one); col (B, T) the code
        column of each target, -1 where the target is padding or a prefix token. With
        `trie_softmax`, node (B, T) is the trie node of the target's prefix (SidTrie.node_of)
        and children the trie's tables. Right padding needs no attention mask: under causal
        attention a real position only sees real ones.
        """
        h = self.lm.transformer(input_ids=inp, use_cache=False).last_hidden_state  # (B, T, d)
        m = col >= 0
        if not self.cfg.trie_softmax:
            logits = self.lm.lm_head(h[m]) + self.column_bias[col[m]]  # (M, V): logits only where scored
            return F.cross_entropy(logits, tgt[m], reduction="sum")
        h, col, node, tgt = h[m], col[m], node[m], tgt[m]  # (M, d), (M,) x 3
        w = self.lm.lm_head.weight  # (V, d), tied to the token table
        total = h.new_zeros(())
        for j, (o, s) in enumerate(zip(self.offsets, self.sizes, strict=True)):
            sel = col == j
            logits = h[sel] @ w[o:o + s].T  # (M_j, S_j): only column j's codes
            logits = logits.masked_fill(children[j][node[sel]] < 0, float("-inf"))  # only real continuations
            total = total + F.cross_entropy(logits, tgt[sel] - o, reduction="sum")
        return total
