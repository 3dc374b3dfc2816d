"""Semantic-ID token vocabulary: the generator's view of the tokenizer's codes file.

The tokenizer writes codes (N+1, C) (row i = item i, row 0 = padding = -1) and a meta JSON
with each column's token offset; code c of column j is token offsets[j] + c. Special tokens
(pad 0, bos 1, eos 2) sit below every offset, so no code ever collides with padding, and
optional hashed user tokens (TIGER) come after the code tokens. The vocabulary size is read
from here, never set by hand.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

USER_HASH = 2_654_435_761  # Knuth's multiplicative hash: spreads consecutive user ids over the buckets


def column_masks(offsets, sizes, vocab_size: int) -> np.ndarray:
    """(C, V) bool: row j marks the tokens of code column j (the only valid outputs at level j)."""
    m = np.zeros((len(sizes), vocab_size), dtype=bool)
    for j, (o, s) in enumerate(zip(offsets, sizes, strict=True)):
        m[j, o:o + s] = True
    return m


@dataclass(frozen=True)
class SidVocab:
    codes: np.ndarray  # (N+1, C) column-local codes, row 0 = -1
    offsets: np.ndarray  # (C,) first token of each column's range
    sizes: np.ndarray  # (C,) codes per column
    pad: int
    bos: int
    eos: int
    code_vocab: int  # special + code tokens
    user_buckets: int = 0

    @classmethod
    def from_meta(cls, codes: np.ndarray, meta: dict, user_buckets: int = 0) -> SidVocab:
        codes = np.asarray(codes, dtype=np.int64)
        sizes = np.asarray(meta["codebook_sizes"], dtype=np.int64)
        offsets = np.asarray(meta["token_offsets"], dtype=np.int64)
        sp = meta["special_tokens"]
        if codes.ndim != 2 or codes.shape[1] != len(sizes) or len(offsets) != len(sizes):
            raise ValueError(f"codes shape {codes.shape} does not match meta: {len(sizes)} code columns")
        if (codes[0] != -1).any():
            raise ValueError("codes row 0 (padding) must be -1")
        body = codes[1:]
        if ((body < 0) | (body >= sizes)).any():
            raise ValueError("codes outside their column's codebook size")
        if len(np.unique(body, axis=0)) != len(body):
            raise ValueError("Semantic IDs are not unique: the extra collision level is missing")
        ends = offsets + sizes
        if offsets[0] <= max(sp.values()) or (offsets[1:] < ends[:-1]).any() or ends[-1] > meta["vocab_size"]:
            raise ValueError("token ranges overlap the special tokens or each other")
        return cls(codes, offsets, sizes, sp["pad"], sp["bos"], sp["eos"], int(meta["vocab_size"]), user_buckets)

    @property
    def n_levels(self) -> int:
        return len(self.sizes)

    @property
    def n_items(self) -> int:
        return len(self.codes) - 1

    @property
    def vocab_size(self) -> int:
        return self.code_vocab + self.user_buckets

    @property
    def prefix_len(self) -> int:
        """Tokens before the first item: bos, then the user token if any."""
        return 1 + (self.user_buckets > 0)

    def item_tokens(self) -> np.ndarray:
        """(N+1, C) token ids of every item's Semantic ID; row 0 = pad tokens."""
        tok = self.codes + self.offsets
        tok[0] = self.pad
        return tok

    def prefix(self, user: int) -> list[int]:
        if not self.user_buckets:
            return [self.bos]
        return [self.bos, self.code_vocab + (int(user) * USER_HASH) % 2**32 % self.user_buckets]

    def sequence(self, items: np.ndarray, user: int, tokens: np.ndarray | None = None) -> np.ndarray:
        """Items (L,) of one user -> (prefix_len + L*C,) tokens."""
        tokens = self.item_tokens() if tokens is None else tokens
        return np.concatenate([np.asarray(self.prefix(user), dtype=np.int64), tokens[items].reshape(-1)])

    def column_masks(self) -> np.ndarray:
        return column_masks(self.offsets, self.sizes, self.vocab_size)
