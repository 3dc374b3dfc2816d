"""Trie-constrained beam search over Semantic IDs (TIGER), vectorised and cache-sharing.

Each history is encoded once; its key/value cache is then repeated once per beam and
reordered as beams are chosen, so a width-100 search costs one prompt pass plus C-1 single-
token passes per user (Hugging Face `generate` would copy every prompt 100 times and
re-encode each). Each step restricts candidates with tensor lookups in the trie
(lib/sid/trie.py), so after C steps every beam is a real item and beams are distinct items.
"""
from __future__ import annotations

import numpy as np
import torch

from lib.sid.model import SidGPT2
from lib.sid.trie import SidTrie

NEG_INF = float("-inf")


@torch.no_grad()
def beam_search(model: SidGPT2, prompts: torch.Tensor, trie: SidTrie, offsets: list[int], width: int,
                exhausted: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """prompts (B, T): equal-length token prompts (no padding) -> items (B, W), log-probs (B, W), codes (B, W, C).

    `exhausted[d - 1]` (B, nodes at depth d), d = 1..C: prefixes whose items are all in the user's
    history (SidTrie.exhausted); masking them excludes seen items exactly. Rows are sorted by
    log-probability; a beam that found no valid item (fewer than W reachable) has item 0 and
    score -inf.
    """
    b = prompts.shape[0]
    out = model.lm(input_ids=prompts, use_cache=True, logits_to_keep=1)
    cache, logits = out.cache, out.logits[:, -1]  # logits (B, V)
    scores = torch.zeros(b, 1, device=prompts.device)  # one live beam per user: the root
    node = torch.zeros(b, 1, dtype=torch.long, device=prompts.device)
    codes = torch.zeros(b, 1, 0, dtype=torch.long, device=prompts.device)
    rows = torch.arange(b, device=prompts.device)[:, None]
    for d, child_table in enumerate(trie.children):
        k, s = node.shape[1], child_table.shape[1]
        child = child_table[node.clamp(min=0)]  # (B, k, S): next node per code, -1 = no such item
        lg = logits[:, offsets[d]:offsets[d] + s].view(b, k, s)
        if model.cfg.trie_softmax:  # the model's distribution is over real continuations only
            lg = lg.masked_fill(child < 0, NEG_INF)
        logp = torch.log_softmax(lg, dim=-1)  # NaN rows (dead beams) are masked out below
        ok = (child >= 0) & (scores > NEG_INF)[..., None]
        if exhausted is not None:
            ok &= ~exhausted[d].gather(1, child.clamp(min=0).view(b, -1)).view(b, k, s)
        cand = (scores[..., None] + logp).masked_fill(~ok, NEG_INF).view(b, k * s)
        scores, idx = cand.topk(min(width, k * s), dim=1)  # (B, k')
        parent, code = idx // s, idx % s
        node = child.view(b, -1).gather(1, idx)
        codes = torch.cat([codes[rows, parent], code[..., None]], dim=-1)  # (B, k', d+1)
        if d == len(trie.children) - 1:
            break
        if d == 0:  # all beams share the prompt: repeat its cache once per beam
            cache.batch_repeat_interleave(scores.shape[1])
        else:
            cache.reorder_cache((rows * k + parent).view(-1))
        tok = (code + offsets[d]).view(-1, 1)  # (B*k', 1): the code just chosen, as a token
        logits = model.lm(input_ids=tok, cache=cache, use_cache=True).logits[:, -1]
    valid = scores > NEG_INF
    items = torch.where(valid, trie.leaf_item[node.clamp(min=0)], 0)
    return items, scores, codes


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices grouped by equal prompt length, cut into batches: prompts need no padding."""
    order = np.argsort(lengths, kind="stable")
    bounds = np.flatnonzero(np.r_[True, np.diff(lengths[order]) != 0, True])
    out = []
    for a, z in zip(bounds[:-1], bounds[1:], strict=True):
        out += [order[i:min(i + batch_size, z)] for i in range(a, z, batch_size)]
    return out
