"""Top-K items from the Semantic-ID generator: the one decoding for validation and test.

Users are batched by prompt length (no padding), each batch runs the trie-constrained beam
search, and the beams become a ranked list of distinct items. With `decode.exclude_seen`
the search never produces an item of the user's history, so the list holds beam_width unseen
items; the evaluator's own seen filtering is then a no-op.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from lib.sid.beam import beam_search, length_batches
from lib.sid.config import GPT2SidConfig
from lib.sid.model import SidGPT2
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab


def prompt(vocab: SidVocab, user: int, history, max_len: int, tokens: np.ndarray) -> np.ndarray:
    return vocab.sequence(np.asarray(history, dtype=np.int64)[-max_len:], user, tokens)


@torch.no_grad()
def decode_users(model: SidGPT2, vocab: SidVocab, trie: SidTrie, users: np.ndarray, histories: list,
                 cfg: GPT2SidConfig, device: torch.device | str = "cpu",
                 progress: bool = False) -> tuple[list[np.ndarray], np.ndarray]:
    """-> (per user its ranked distinct items, codes (U, W, C) of every beam, -1 for empty beams)."""
    model.eval().to(device)
    trie.to(device)
    tokens = vocab.item_tokens()
    prompts = [prompt(vocab, u, h, model.cfg.max_len, tokens) for u, h in zip(users, histories, strict=True)]
    width = cfg.decode.beam_width
    out: list = [None] * len(prompts)
    codes = np.full((len(prompts), width, vocab.n_levels), -1, dtype=np.int64)
    offsets = vocab.offsets.tolist()
    batches = length_batches(np.array([len(p) for p in prompts]), cfg.decode.batch_size)
    for rows in tqdm(batches, desc="beam search", disable=not progress, mininterval=2.0):
        x = torch.from_numpy(np.stack([prompts[i] for i in rows])).to(device)
        ex = None
        if cfg.decode.exclude_seen:
            hist = [histories[i] for i in rows]
            ex = [trie.exhausted(hist, d).to(device) for d in range(vocab.n_levels + 1)]
        items, scores, c = beam_search(model, x, trie, offsets, width, ex)
        items, c = items.cpu().numpy(), c.cpu().numpy()
        for j, i in enumerate(rows):
            ok = items[j] > 0
            out[i] = items[j][ok]
            codes[i, : ok.sum()] = c[j][ok]
    return out, codes


def recommend(model: SidGPT2, vocab: SidVocab, trie: SidTrie, rows: pd.DataFrame, cfg: GPT2SidConfig,
              device: torch.device | str = "cpu", progress: bool = True) -> tuple[pd.DataFrame, np.ndarray]:
    """Evaluation rows (user, history) -> (DataFrame(user, items), beam codes (U, W, C))."""
    users = rows["user"].to_numpy(np.int64)
    items, codes = decode_users(model, vocab, trie, users, list(rows["history"]), cfg, device, progress)
    return pd.DataFrame({"user": users, "items": [i[: cfg.top_k] for i in items]}), codes


def invalid_rate(codes: np.ndarray, vocab: SidVocab) -> float:
    """Fraction of generated code tuples (codes (U, W, C), rows of -1 = empty beam) that name no item.

    Checked against the codes table itself, not the trie that constrained the search.
    """
    gen = codes.reshape(-1, codes.shape[-1])
    gen = gen[(gen >= 0).all(axis=1)]
    radix = np.cumprod(np.r_[1, vocab.sizes[:-1]])
    known = vocab.codes[1:] @ radix
    return float(np.mean(~np.isin(gen @ radix, known))) if len(gen) else 0.0


def prefix_hit_rates(items: list[np.ndarray], targets: np.ndarray, vocab: SidVocab, k: int = 10) -> dict:
    """Share of users whose top-k holds an item agreeing with the target on its first l codes, l = 1..C."""
    top = np.zeros((len(items), k), dtype=np.int64)
    for i, it in enumerate(items):
        top[i, : min(k, len(it))] = it[:k]
    gen, tgt = vocab.codes[top], vocab.codes[targets][:, None, :]  # (U, k, C), (U, 1, C); item 0 -> -1 codes
    same = np.cumprod(gen == tgt, axis=-1).astype(bool) & (top > 0)[..., None]  # (U, k, C) prefix agreement
    return {f"prefix_hr@{k}/codes{j + 1}": round(float(same[..., j].any(axis=1).mean()), 6)
            for j in range(vocab.n_levels)}
