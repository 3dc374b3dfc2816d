"""Residual k-means Semantic IDs: the RQ-VAE's quantiser without the network.

Level 0 is k-means of the content embeddings, level l is k-means of what levels < l left unexplained
(the residuals), so an item's codes go from coarse to fine as in TIGER's RQ-VAE (Rajput et al. 2023)
but with no encoder, decoder or training loop; the codebooks are the centroids (k-means++ seeded,
kmeans.py). The baseline for asking what the RQ-VAE's training adds.

Input: content embeddings (N+1, D), row 0 = padding. Output: raw codes (N, levels) of items 1..N;
lib/tokenizers/codes.py makes them unique Semantic IDs.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lib.tokenizers.kmeans import kmeans, nearest, resolve_device

if TYPE_CHECKING:
    from lib.tokenizers.rqvae import RQVAEConfig

log = logging.getLogger(__name__)


def fit(x: Tensor, levels: int, size: int, generator: torch.Generator) -> Tensor:
    """Residual k-means of `x` (n, D): (levels, size, D) codebooks, level l = k-means of the level-l residuals."""
    books, residual = [], x
    for _ in range(levels):
        book = kmeans(residual, size, generator)  # (size, D)
        residual = residual - book[nearest(residual, book)]
        books.append(book)
    return torch.stack(books)


def encode(x: Tensor, books: Tensor) -> tuple[Tensor, Tensor]:
    """Codes (n, levels) of `x` (n, D) under `books` (levels, K, D), and (levels, n, D) the running sums of codes.

    Row l of the sums is the reconstruction from the first l+1 levels.
    """
    codes, sums, residual, total = [], [], x, torch.zeros_like(x)
    for book in books:
        idx = nearest(residual, book)
        residual, total = residual - book[idx], total + book[idx]
        codes.append(idx)
        sums.append(total)
    return torch.stack(codes, 1), torch.stack(sums)


def tokenize(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
             on_level: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, dict, dict]:
    """Fit the codebooks on rows `fit_ids` of `embeddings` (N+1, D), encode every item 1..N (cold ones too).

    Returns raw codes (N, levels) int64, facts for the metrics file and the model.pt contents
    (codebooks and config). quant_mse: mean squared error per dimension of the embedding against the
    sum of its codes, over all N items (the analogue of the RQ-VAE's recon_mse); quant_rel: the same
    relative to the embeddings' variance; quant_cosine: mean cosine of embedding and code sum.
    `on_level(l, logs)` receives quant_mse after levels 1..l, for a curve of error against depth.
    """
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(cfg.seed)  # CPU: k-means++ picks, same on any device
    start = time.perf_counter()
    x = torch.as_tensor(np.asarray(embeddings[1:], dtype=np.float32), device=device)  # (N, D)
    books = fit(x[torch.as_tensor(fit_ids - 1, device=device)], cfg.levels, cfg.codebook_size, gen)
    codes, sums = encode(x, books)
    seconds = time.perf_counter() - start
    var = float(x.var(0, unbiased=False).mean())
    by_level = [float((s - x).pow(2).mean()) for s in sums]
    for level, mse in enumerate(by_level, 1):
        if on_level is not None:
            on_level(level, {"quant_mse": mse})
    mse, cosine = by_level[-1], float(F.cosine_similarity(sums[-1], x, dim=-1).mean())
    facts = {"fit_item_count": len(fit_ids), "fit_seconds": round(seconds, 2), "device": str(device),
             "quant_mse": round(mse, 8), "quant_rel": round(mse / max(var, 1e-12), 6), "quant_cosine": round(cosine, 6)}
    log.info("residual k-means: %d levels x %d codes fitted on %d items in %.1fs; quant_mse by level %s",
             cfg.levels, cfg.codebook_size, len(fit_ids), seconds, [round(v, 6) for v in by_level])
    return codes.cpu().numpy().astype(np.int64), facts, {"codebooks": books.cpu(), "config": asdict(cfg)}
