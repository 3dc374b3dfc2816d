"""Two fit-free tokenizers, the ablations of TIGER's Semantic IDs (Rajput et al. 2023, Table 2).

random: every item gets independent, uniformly random codes per level: IDs without semantics.
lsh: random-hyperplane LSH (Charikar 2002, SimHash): level l's code is the sign pattern of the
  content embedding under log2(codebook_size) random projections, read as a binary number. Items
  with close directions share bits, but the levels are independent hashes of the same vector, not
  a coarse-to-fine hierarchy; a code depends only on the embedding's direction (x and 2x agree).

Both draw everything from `seed` and fit nothing, so `fit_items` does not apply (fit_item_count = 0):
every item, cold or not, is hashed the same way. Same signature and return as rqvae.tokenize.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lib.tokenizers.rqvae import RQVAEConfig


def random_codes(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
                 on_step: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, dict, dict]:
    """Uniform codes in [0, codebook_size) for items 1..N of `embeddings` (N+1, D) (only N is read).

    Returns raw codes (N, levels) int64, facts, model.pt contents (the config: the seed regenerates the codes).
    """
    rng = np.random.default_rng(cfg.seed)
    raw = rng.integers(0, cfg.codebook_size, size=(len(embeddings) - 1, cfg.levels), dtype=np.int64)
    return raw, {"fit_item_count": 0}, {"config": asdict(cfg)}


def lsh_bits(codebook_size: int) -> int:
    """log2(codebook_size), the sign bits per level; codebook_size must be a power of two >= 2."""
    if codebook_size < 2 or codebook_size & (codebook_size - 1):
        raise ValueError(f"codebook_size: lsh needs a power of two >= 2, got {codebook_size}")
    return codebook_size.bit_length() - 1


def hash_codes(x: np.ndarray, planes: np.ndarray) -> np.ndarray:
    """(n, D) vectors, (levels, bits, D) hyperplane normals -> (n, levels) codes: bit b = [<x, plane_b> > 0]."""
    levels, bits, dim = planes.shape
    above = (x @ planes.reshape(levels * bits, dim).T > 0).reshape(len(x), levels, bits)  # (n, levels, bits)
    return (above.astype(np.int64) << np.arange(bits)).sum(-1)


def lsh_codes(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
              on_step: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, dict, dict]:
    """Random-hyperplane codes of items 1..N of `embeddings` (N+1, D), Gaussian normals drawn from cfg.seed.

    Returns raw codes (N, levels) int64, facts, model.pt contents (hyperplanes (levels, bits, D) and config).
    Projections run in float64, where scaling by a power of two is exact, so x and 2x get the same code.
    """
    bits = lsh_bits(cfg.codebook_size)
    planes = np.random.default_rng(cfg.seed).standard_normal((cfg.levels, bits, embeddings.shape[1]))
    raw = hash_codes(np.asarray(embeddings[1:], dtype=np.float64), planes)
    return raw, {"fit_item_count": 0}, {"planes": planes, "config": asdict(cfg)}
