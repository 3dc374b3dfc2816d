"""Semantic IDs from any tokenizer's raw codes: the collision level, the token layout, diagnostics.

A tokenizer (RQ-VAE, residual k-means, random codes, LSH, PQ or OPQ) maps item i to raw codes
(L,), code c of level l in [0, sizes[l]). Items may share all L codes (identical or near-identical
content); as in TIGER (Rajput et al. 2023, §3.1) and GRID, one extra level numbers the items of
each such group 0, 1, 2, ... so every full ID is unique. The numbering follows arrival order
(lib/catalogue.arrival_order: first interaction, then id) when the stage gives it, so a known item's
ID never depends on items that arrive later; item ids follow asin order, which tracks product age, so
id order would let a later item take a smaller number than an earlier one.

The generator sees a tokenizer only through what `semantic_ids` returns (written by the stage):
  codes (N+1, L+1) int64: row i = item i's Semantic ID, row 0 = -1 (padding has no codes);
  meta: sizes per column (the last = largest collision group), token offsets and vocab size; for PQ/OPQ
    (RPG) also `parallel: true`: the L digits are codes of L sub-spaces, unordered, none coarser than
    another (absent for the residual and hashing tokenizers, whose levels are read in order).
Code c of column j is token `token_offsets[j] + c`; tokens 0..2 are pad/bos/eos, so no code is
ever read as padding and the columns' token ranges do not overlap.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenizerSpec:
    vectors: str  # a key of params `vectors`: the item vectors it quantises (dvc.yaml needs it)
    protocol: str  # whose split's training items the tokenizer is fit on (dvc.yaml needs it)
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the `rqvae` section: key -> value

SPECIAL_TOKENS = {"pad": 0, "bos": 1, "eos": 2}
PAD_CODE = -1  # codes.npy row 0: the padding item has no codes


def check_embeddings(emb: np.ndarray, n_items: int, dim: int | None = None) -> None:
    """Embeddings must be the embed stage's contract: (n_items+1, dim) floats, row 0 = padding zeros."""
    if emb.ndim != 2 or emb.shape[0] != n_items + 1:
        raise ValueError(f"embeddings have shape {emb.shape}; expected ({n_items + 1}, dim): "
                         f"row i = item id i for {n_items} items plus padding row 0")
    if dim is not None and emb.shape[1] != dim:
        raise ValueError(f"embeddings have {emb.shape[1]} columns but their meta.json says dim={dim}")
    if np.any(emb[0]):
        raise ValueError("embeddings row 0 (padding) is not all zeros: rows are not aligned to item ids")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain NaN or inf")


def fit_item_ids(n_items: int, fit_items: Literal["train", "all"],
                 train_items: np.ndarray | None = None, known: np.ndarray | None = None) -> np.ndarray:
    """Item ids (sorted, unique) a tokenizer is fitted on; every item 1..N is encoded either way.

    train: the items with at least one training interaction (`train_items`: their ids, repeats allowed),
    so the codebooks never see content first seen in the validation/test period. all: items 1..N, only
    when every one is known at the training cut-off (`known` (N+1,) bool, lib/catalogue.training_mask;
    None = every item, as leave-one-out's whole catalogue); under a temporal split it is an error, as it
    would fit on items that did not exist yet. Training items outside `known` are an error (split and
    catalogue disagree).
    """
    if known is not None:
        known = np.asarray(known, dtype=bool)
        if known.shape != (n_items + 1,):
            raise ValueError(f"catalogue: {known.shape[0]} flags for {n_items} items (+ padding row 0)")
    if fit_items == "all":
        unknown = 0 if known is None else int((~known[1:]).sum())
        if unknown:
            raise ValueError(f"fit_items=all would fit the tokenizer on {unknown} of {n_items} items unknown at the "
                             "training cut-off (first seen after it: the future); use fit_items: train")
        return np.arange(1, n_items + 1, dtype=np.int64)
    if train_items is None:
        raise ValueError("fit_items=train needs the training interactions' item ids")
    ids = np.unique(np.asarray(train_items, dtype=np.int64))
    if len(ids) == 0:
        raise ValueError("fit_items=train: the training split has no items")
    if ids[0] < 1 or ids[-1] > n_items:
        raise ValueError(f"training item ids span {ids[0]}..{ids[-1]}, outside the catalogue 1..{n_items}")
    if known is not None and not known[ids].all():
        raise ValueError(f"{int((~known[ids]).sum())} training items are unknown at the training cut-off in the "
                         "catalogue: the split's catalogue and its training data disagree")
    log.info("fit_items=train: fitting on %d of %d items (%d cold items are only encoded)",
             len(ids), n_items, n_items - len(ids))
    return ids


def collision_level(raw: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """(N, L) raw codes of items 1..N -> (N,) rank of each item within its group of equal code tuples (0 = first).

    Ranks follow `order` ((N,) the item ids 1..N, first = earliest: lib/catalogue.arrival_order), so an
    item's rank depends only on the items before it; None = item id order. An item that shares its
    codes with no other item gets 0.
    """
    _, group = np.unique(raw, axis=0, return_inverse=True)
    group = group.reshape(-1)
    position = np.arange(len(group))  # (N,) each row's place in the order
    if order is not None:
        order = np.asarray(order, dtype=np.int64)
        if not np.array_equal(np.sort(order), np.arange(1, len(group) + 1)):
            raise ValueError(f"collision order must hold each item id 1..{len(group)} once")
        position[order - 1] = np.arange(len(group))
    rows = np.lexsort((position, group))  # rows grouped, in the given order within a group
    sorted_group = group[rows]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(group)]))  # (N,) group start in sorted order
    rank = np.empty(len(group), dtype=np.int64)
    rank[rows] = np.arange(len(group)) - first
    return rank


def token_layout(sizes: Sequence[int]) -> tuple[list[int], int]:
    """(offsets, vocab_size): column j's codes take tokens offsets[j] .. offsets[j] + sizes[j] - 1."""
    offsets = (len(SPECIAL_TOKENS) + np.r_[0, np.cumsum(sizes)[:-1]]).astype(int).tolist()
    return offsets, len(SPECIAL_TOKENS) + int(sum(sizes))


def code_tokens(codes: np.ndarray, offsets: Sequence[int]) -> np.ndarray:
    """(N+1, C) codes -> (N+1, C) generator tokens; padding rows (codes -1) become the pad token."""
    tokens = codes + np.asarray(offsets, dtype=np.int64)
    return np.where(codes == PAD_CODE, SPECIAL_TOKENS["pad"], tokens)


def level_stats(raw: np.ndarray, sizes: Sequence[int]) -> dict:
    """Per level l: codes used by at least one item (count, fraction of sizes[l]) and the perplexity
    exp(entropy) of the code distribution over items (= sizes[l] when usage is uniform, 1 when collapsed)."""
    out = {}
    for level, size in enumerate(sizes):
        counts = np.bincount(raw[:, level], minlength=size)
        p = counts[counts > 0] / counts.sum()
        out[f"level_{level}"] = {"codes_used": int((counts > 0).sum()),
                                 "usage": round(float((counts > 0).mean()), 6),
                                 "perplexity": round(float(np.exp(-(p * np.log(p)).sum())), 3)}
    return out


def collision_stats(raw: np.ndarray) -> dict:
    """How many items share their full raw code tuple with another item (before the extra level)."""
    _, counts = np.unique(raw, axis=0, return_counts=True)
    return {"collision_rate": round(float(counts[counts > 1].sum() / len(raw)), 6),
            "colliding_groups": int((counts > 1).sum()),
            "largest_group": int(counts.max()),
            "unique_prefixes": len(counts)}


def semantic_ids(raw: np.ndarray, sizes: Sequence[int], method: str, parallel: bool = False,
                 order: np.ndarray | None = None) -> tuple[np.ndarray, dict, dict]:
    """A tokenizer's raw codes of items 1..N as unique Semantic IDs.

    raw: (N, L) ints, column l in [0, sizes[l]); order: (N,) item ids in arrival order, numbering each
    collision group (`collision_level`; None = item id order). Returns
      codes (N+1, L+1) int64: row 0 = -1, last column = collision level (`collision_level`);
      meta: method, levels (L), n_levels (L+1), codebook_sizes (L+1; the last = largest group, >= 1),
        special_tokens, token_offsets, vocab_size, n_items, collision_order ("arrival" | "item_id"), and
        `parallel: true` if `parallel` (unordered digits; the key is left out otherwise);
      diagnostics: `level_stats` of the L levels and `collision_stats`.
    """
    raw = np.asarray(raw, dtype=np.int64)
    if raw.ndim != 2 or raw.shape[1] != len(sizes) or len(raw) == 0:
        raise ValueError(f"raw codes have shape {raw.shape}; expected (n_items, {len(sizes)})")
    if raw.min() < 0 or np.any(raw.max(axis=0) >= np.asarray(sizes)):
        raise ValueError(f"raw codes fall outside [0, size) for sizes {list(sizes)}")
    extra = collision_level(raw, order)
    codes = np.full((len(raw) + 1, raw.shape[1] + 1), PAD_CODE, dtype=np.int64)
    codes[1:, :-1] = raw
    codes[1:, -1] = extra
    all_sizes = [int(s) for s in sizes] + [int(extra.max()) + 1]
    offsets, vocab = token_layout(all_sizes)
    meta = {"method": method, "levels": len(sizes), "n_levels": len(all_sizes), "codebook_sizes": all_sizes,
            "special_tokens": dict(SPECIAL_TOKENS), "token_offsets": offsets, "vocab_size": vocab,
            "n_items": len(raw), "rows": "row i = item id i; row 0 = padding (all -1); last column = collision level",
            "collision_order": "item_id" if order is None else "arrival"}
    if parallel:
        meta["parallel"] = True
    diagnostics = {**level_stats(raw, sizes), **collision_stats(raw)}
    log.info("%s: %d items, %.2f%% in %d colliding groups (largest %d); vocab %d", method, len(raw),
             100 * diagnostics["collision_rate"], diagnostics["colliding_groups"], diagnostics["largest_group"], vocab)
    return codes, meta, diagnostics


def code_usage(codes: np.ndarray, levels: int) -> pd.DataFrame:
    """Codes (N+1, levels[+1]) with row 0 = padding -> (level, rank, items): per semantic level, how many
    items each used code holds, most used first. A small table the report plots without the codes."""
    rows = []
    for level in range(levels):
        counts = np.sort(np.bincount(codes[1:, level]))[::-1]
        counts = counts[counts > 0]
        rows.append(pd.DataFrame({"level": level + 1, "rank": np.arange(1, len(counts) + 1), "items": counts}))
    return pd.concat(rows, ignore_index=True)
