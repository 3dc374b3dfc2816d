"""Top-K items from the Semantic-ID generator: the one decoding for validation and test.

Users are batched by prompt length (no padding), each batch runs the trie-constrained beam
search, and the beams become a ranked list of distinct items. With `decode.exclude_seen`
the search never produces an item of the user's history, so the list holds beam_width unseen
items; the evaluator's own seen filtering is then a no-op.

The trie passed in is the list's catalogue (lib/catalogue.py: the items known at its cut-off), so a
list never holds an item unknown at that cut-off; an item known then but after the model's training
cut-off is generated through its codes, like any other.

Cold items (no training interaction) are never training targets, so the generator almost never
ranks them high. TIGER's answer (Rajput et al. 2023, cold-start section) is applied when
`decode.cold_every` > 0: every n-th rank of the list is given to a cold item whose first
`cold_prefix` codes equal those of a generated item, taken in beam order, so the content
hierarchy of the Semantic IDs decides which new items are shown. It is a list-injection rule
(issue 29: an analysis, never a leaderboard model); its candidates are the list's knowable cold pool
(lib/cold.knowable_pool), and only items of the search's trie are ever injected.
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


def autocast(cfg: GPT2SidConfig, device: torch.device | str):
    """The generator's numerical mode (train.precision) for a forward pass on `device`."""
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16,
                          enabled=cfg.train.precision == "bf16-mixed")


def prompt(vocab: SidVocab, user: int, history, max_len: int, tokens: np.ndarray) -> np.ndarray:
    return vocab.sequence(np.asarray(history, dtype=np.int64)[-max_len:], user, tokens)


def cold_index(codes: np.ndarray, cold_items: np.ndarray, prefix: int) -> dict[tuple, list[int]]:
    """Cold items grouped by their first `prefix` codes (codes (N+1, C)), item order within a group."""
    index: dict[tuple, list[int]] = {}
    for it in np.sort(np.asarray(cold_items, dtype=np.int64)):
        index.setdefault(tuple(codes[it, :prefix]), []).append(int(it))
    return index


def mix_cold(items: np.ndarray, history, index: dict, codes: np.ndarray, prefix: int, every: int,
             length: int) -> np.ndarray:
    """Ranked beam items -> list of `length` where ranks every, 2*every, ... hold cold candidates.

    Candidates: unseen cold items sharing the first `prefix` codes of a generated item, in beam
    order; when they run out, beam items fill the remaining ranks.
    """
    taken = set(history) | {int(i) for i in items}
    cands = []
    for it in items:
        for c in index.get(tuple(codes[it, :prefix]), ()):
            if c not in taken:
                cands.append(c)
                taken.add(c)
    out, beams, k = [], iter(items), 0
    while len(out) < length:
        if (len(out) + 1) % every == 0 and k < len(cands):
            out.append(cands[k])
            k += 1
            continue
        nxt = next(beams, None)
        if nxt is None:
            out += cands[k:k + length - len(out)]
            break
        out.append(int(nxt))
    return np.array(out, dtype=np.int64)


def rule_candidates(cold_items: np.ndarray, trie: SidTrie) -> np.ndarray:
    """Cold-start rule candidates (item ids, or a (N+1,) bool mask) -> sorted ids of those in the trie's catalogue."""
    cold = np.asarray(cold_items)
    ids = np.flatnonzero(cold) if cold.dtype == bool else cold.astype(np.int64)
    ids = ids[(ids >= 1) & (ids < len(trie.items))]
    return np.unique(ids[trie.items[ids]])


@torch.no_grad()
def decode_users(model: SidGPT2, vocab: SidVocab, trie: SidTrie, users: np.ndarray, histories: list,
                 cfg: GPT2SidConfig, device: torch.device | str = "cpu", progress: bool = False,
                 cold_items: np.ndarray | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """-> (per user its ranked distinct items, codes (U, W, C) of every beam, -1 for empty beams).

    trie: the list's catalogue (SidTrie items); the search returns only its items.
    cold_items: the cold-start rule's candidates (`decode.cold_every`): item ids, or a (N+1,) bool mask
    such as lib/cold.knowable_pool; those outside the trie's catalogue are dropped.
    """
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
            ex = [trie.exhausted(hist, d).to(device) for d in range(1, vocab.n_levels + 1)]
        with autocast(cfg, device):
            items, scores, c = beam_search(model, x, trie, offsets, width, ex)
        items, c = items.cpu().numpy(), c.cpu().numpy()
        for j, i in enumerate(rows):
            ok = items[j] > 0
            out[i] = items[j][ok]
            codes[i, : ok.sum()] = c[j][ok]
    d = cfg.decode
    cold = rule_candidates(cold_items, trie) if d.cold_every and cold_items is not None else np.zeros(0, np.int64)
    if len(cold):
        prefix = min(d.cold_prefix, vocab.n_levels)
        index = cold_index(vocab.codes, cold, prefix)
        out = [mix_cold(o, h, index, vocab.codes, prefix, d.cold_every, width)
               for o, h in zip(out, histories, strict=True)]
    return out, codes


def recommend(model: SidGPT2, vocab: SidVocab, trie: SidTrie, rows: pd.DataFrame, cfg: GPT2SidConfig,
              device: torch.device | str = "cpu", progress: bool = True,
              cold_items: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Evaluation rows (user, history) -> (DataFrame(user, items), beam codes (U, W, C))."""
    users = rows["user"].to_numpy(np.int64)
    items, codes = decode_users(model, vocab, trie, users, list(rows["history"]), cfg, device, progress,
                                cold_items)
    return pd.DataFrame({"user": users, "items": [i[: cfg.top_k] for i in items]}), codes


def invalid_rate(codes: np.ndarray, vocab: SidVocab, candidates: np.ndarray | None = None) -> float:
    """Fraction of generated code tuples (codes (U, W, C), rows of -1 = empty beam) that name no item
    of the list's catalogue (candidates (N+1,) bool; None = every item).

    Checked against the codes table itself, not the trie that constrained the search.
    """
    gen = codes.reshape(-1, codes.shape[-1])
    gen = gen[(gen >= 0).all(axis=1)]
    radix = np.cumprod(np.r_[1, vocab.sizes[:-1]])
    rows = vocab.codes[1:] if candidates is None else vocab.codes[1:][np.asarray(candidates, dtype=bool)[1:]]
    known = rows @ radix
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
