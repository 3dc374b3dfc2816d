"""Product-quantised Semantic IDs: PQ (Jegou et al. 2011) and OPQ (Ge et al. 2014), the item IDs of RPG
(Hou et al., KDD 2025, "Generating Long Semantic IDs in Parallel for Recommendation").

PQ cuts each embedding into m = `levels` sub-vectors of D/m dims and quantises sub-vector j with its own
k-means codebook of K = `codebook_size` centroids, so an item gets m digits in [0, K). Unlike residual
quantisation the digits are parallel: digit j describes sub-space j only, none is coarser than another,
and their order carries no hierarchy (the stage marks meta.json `parallel: true`). OPQ first learns a
rotation of the embedding space, alternating a PQ fit with an orthogonal Procrustes update of the rotation,
so that the sub-spaces share the variance and correlate less; RPG uses OPQ, 32 digits x 256 codes on Beauty,
fit on the training items.

Fitting is faiss's (ProductQuantizer, OPQMatrix); assigning items to codes is ours (`assign`, float64), so
any power-of-two K works and model.pt re-encodes without faiss. Choices, all applied to every item alike:
  - centring: items are quantised as x - mean, the fit items' mean. RPG's faiss index
    `OPQ{m},IVF1,PQ{m}x{bits}` likewise quantises residuals from one coarse centroid (there the
    inner-product centroid); the mean is the L2-optimal one and keeps the codebooks off the offset.
  - optional PCA (`pca_dim` > 0): the centred items are first projected on the fit items' top
    `pca_dim` principal components, each scaled to unit variance (whitened), as RPG's code does
    (sentence-T5 768 -> 128 dims, then OPQ32): every sub-space then quantises equally strong directions.
  - no L2 re-normalisation: the embed stage already writes unit rows, and quant_rel stays comparable
    with rqkmeans'.
  - no subsampling: faiss would subsample above 256 points per centroid (PQ) or 65,536 points (OPQ);
    we lift both limits so every fit item is used.
Reproducibility: faiss runs on `threads` OpenMP threads (1 when 0), its k-means is seeded with `seed`,
and OPQ starts from a rotation drawn from `seed` (faiss's own start is a fixed 1234). Single-threaded the
codes are identical byte for byte on a rerun (faiss notes its LAPACK SVD is bit-exact only then).
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

import faiss
import numpy as np
import torch

if TYPE_CHECKING:
    from lib.tokenizers.rqvae import RQVAEConfig

log = logging.getLogger(__name__)

METHODS = ("pq", "opq")  # their digits are parallel (unordered), see the module docstring
OPQ_INNER_ITERS = (40, 4)  # k-means iterations of OPQ's inner PQ fit: first alternation, later ones (faiss)


def code_bits(codebook_size: int) -> int:
    """log2(codebook_size): faiss's PQ codes have nbits bits, so codebook_size must be a power of two >= 2."""
    if codebook_size < 2 or codebook_size & (codebook_size - 1):
        raise ValueError(f"codebook_size: pq/opq need a power of two >= 2 (codes of log2(codebook_size) bits), "
                         f"got {codebook_size}")
    return codebook_size.bit_length() - 1


def check_fit(dim: int, n_fit: int, cfg: RQVAEConfig) -> None:
    """What faiss would refuse, as errors naming the param: D/m sub-vector dims, at least K fit items."""
    code_bits(cfg.codebook_size)
    if cfg.pca_dim > dim:
        raise ValueError(f"pca_dim: {cfg.pca_dim} is more than the embedding dim {dim}")
    dim = cfg.pca_dim or dim  # the dims that are quantised
    if dim % cfg.levels:
        raise ValueError(f"levels: {cfg.method} splits each embedding into levels={cfg.levels} sub-vectors, "
                         f"but the {'pca_dim' if cfg.pca_dim else 'embedding dim'} {dim} is not divisible by "
                         f"{cfg.levels}")
    if n_fit < cfg.codebook_size:
        raise ValueError(f"codebook_size: {cfg.method} fits {cfg.codebook_size} centroids per sub-space on "
                         f"{n_fit} fit items; it needs at least as many items as codes")


def product_quantizer(dim: int, n_fit: int, cfg: RQVAEConfig) -> faiss.ProductQuantizer:
    """An untrained faiss PQ of `levels` sub-spaces x 2^bits codes, seeded, using all `n_fit` points."""
    pq = faiss.ProductQuantizer(dim, cfg.levels, code_bits(cfg.codebook_size))
    pq.cp.seed = cfg.seed
    pq.cp.niter = cfg.pq_iters
    pq.cp.max_points_per_centroid = max(256, -(-n_fit // cfg.codebook_size))  # never subsample the fit items
    pq.cp.min_points_per_centroid = 1  # faiss would print a warning per sub-space and iteration; we log once
    if n_fit < 39 * cfg.codebook_size:
        log.warning("%s: %d fit items for %d codes per sub-space (k-means likes >= 39 points per centroid)",
                    cfg.method, n_fit, cfg.codebook_size)
    return pq


def random_rotation(dim: int, seed: int) -> np.ndarray:
    """(dim, dim) orthogonal matrix, Haar-distributed: QR of a Gaussian matrix with R's diagonal made positive."""
    q, r = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, dim)))
    return q * np.sign(np.diag(r))


def learn_rotation(xc: np.ndarray, cfg: RQVAEConfig) -> np.ndarray:
    """OPQ rotation (D, D) of centred fit vectors `xc` (n, D): rotated = xc @ rotation (orthonormal columns)."""
    n, dim = xc.shape
    opq = faiss.OPQMatrix(dim, cfg.levels)
    opq.niter = cfg.opq_iters
    opq.niter_pq_0, opq.niter_pq = OPQ_INNER_ITERS
    opq.max_train_points = n
    inner = product_quantizer(dim, n, cfg)  # kept referenced: faiss holds only a pointer
    opq.pq = inner
    # faiss applies y = A x with A (D_out, D_in) row-major and starts from its own A if one is set
    faiss.copy_array_to_vector(random_rotation(dim, cfg.seed).T.astype(np.float32).ravel(), opq.A)
    opq.train(np.ascontiguousarray(xc, dtype=np.float32))
    return faiss.vector_to_array(opq.A).reshape(dim, dim).T.astype(np.float64)


def pca_whitening(xc: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Centred fit vectors (n, D) -> projection (D, dim) onto the top `dim` principal components, whitened
    (each output coordinate has unit variance on the fit items), and its inverse (dim, D) back to the
    embedding space (exact on the span of those components)."""
    if not 0 < dim <= min(xc.shape):
        raise ValueError(f"pca_dim: must be in [1, min(fit items, embedding dim) = {min(xc.shape)}], got {dim}")
    _, sv, vt = np.linalg.svd(xc, full_matrices=False)  # xc = U diag(sv) Vt, components = rows of Vt
    vt = vt * np.sign(vt[:, :1] + (vt[:, :1] == 0))  # a sign per component, so the projection is unique
    std = sv[:dim] / np.sqrt(max(len(xc) - 1, 1))  # (dim,) each component's standard deviation
    return vt[:dim].T / std, vt[:dim] * std[:, None]


def fit_centroids(x: np.ndarray, cfg: RQVAEConfig) -> np.ndarray:
    """faiss PQ fit of `x` (n, D): centroids (levels, codebook_size, D / levels)."""
    pq = product_quantizer(x.shape[1], len(x), cfg)
    pq.train(np.ascontiguousarray(x, dtype=np.float32))
    return faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub).astype(np.float64)


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, D) vectors, (m, K, D/m) centroids -> (n, m) int64 codes: the nearest centroid in each sub-space."""
    m, _, dsub = centroids.shape
    sub = x.reshape(len(x), m, dsub)  # (n, m, D/m)
    codes = np.empty((len(x), m), dtype=np.int64)
    for j in range(m):
        dist = (centroids[j] ** 2).sum(1) - 2 * sub[:, j] @ centroids[j].T  # (n, K), |x|^2 dropped
        codes[:, j] = dist.argmin(1)
    return codes


def decode(codes: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(n, m) codes -> (n, D) the concatenated centroids (in the quantised space: centred, rotated for OPQ)."""
    return centroids[np.arange(centroids.shape[0]), codes].reshape(len(codes), -1)  # (n, m, D/m) -> (n, D)


def encode(x: np.ndarray, state: dict) -> np.ndarray:
    """Codes (n, levels) of vectors `x` (n, D) under a model.pt's state (mean, [projection], rotation, centroids)."""
    xc = np.asarray(x, dtype=np.float64) - state["mean"].numpy()
    if "projection" in state:
        xc = xc @ state["projection"].numpy()
    return assign(xc @ state["rotation"].numpy(), state["centroids"].numpy())


def reconstruct(codes: np.ndarray, state: dict) -> np.ndarray:
    """(n, levels) codes -> (n, D) vectors in the embedding space: mean + decoded @ rotation^T [@ unprojection]."""
    y = decode(codes, state["centroids"].numpy()) @ state["rotation"].numpy().T
    if "projection" in state:
        y = y @ state["unprojection"].numpy()
    return state["mean"].numpy() + y


def _tokenize(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
              rotate: bool) -> tuple[np.ndarray, dict, dict]:
    check_fit(embeddings.shape[1], len(fit_ids), cfg)
    if cfg.pca_dim and cfg.pca_dim > len(fit_ids):
        raise ValueError(f"pca_dim: {cfg.pca_dim} components need at least as many fit items, got {len(fit_ids)}")
    faiss.omp_set_num_threads(cfg.threads or 1)
    start = time.perf_counter()
    x = np.asarray(embeddings[1:], dtype=np.float64)  # (N, D)
    mean = x[fit_ids - 1].mean(0)  # (D,)
    xc, extra = x - mean, {}
    if cfg.pca_dim:
        projection, unprojection = pca_whitening(xc[fit_ids - 1], cfg.pca_dim)
        xc = xc @ projection  # (N, pca_dim)
        extra = {"projection": torch.from_numpy(projection), "unprojection": torch.from_numpy(unprojection)}
    rotation = learn_rotation(xc[fit_ids - 1], cfg) if rotate else np.eye(xc.shape[1])
    xq = xc @ rotation  # (N, D or pca_dim) the quantised space
    centroids = fit_centroids(xq[fit_ids - 1], cfg)
    codes = assign(xq, centroids)
    seconds = time.perf_counter() - start
    state = {"mean": torch.from_numpy(mean), **extra, "rotation": torch.from_numpy(rotation),
             "centroids": torch.from_numpy(centroids), "config": asdict(cfg)}
    recon = reconstruct(codes, state)
    mse, var = float(((recon - x) ** 2).mean()), float(x.var(0).mean())
    cosine = (recon * x).sum(1) / np.maximum(np.linalg.norm(recon, axis=1) * np.linalg.norm(x, axis=1), 1e-12)
    facts = {"fit_item_count": len(fit_ids), "fit_seconds": round(seconds, 2),
             "quant_mse": round(mse, 8), "quant_rel": round(mse / max(var, 1e-12), 6),
             "quant_cosine": round(float(cosine.mean()), 6)}
    log.info("%s: %d digits x %d codes fitted on %d items in %.1fs; quant_rel %.4f", cfg.method, cfg.levels,
             cfg.codebook_size, len(fit_ids), seconds, facts["quant_rel"])
    return codes, facts, state


def pq_codes(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
             on_step: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, dict, dict]:
    """PQ of rows `fit_ids` of `embeddings` (N+1, D), row 0 = padding; every item 1..N is encoded.

    Returns raw codes (N, levels) int64 (parallel digits), facts and the model.pt contents: mean (D,),
    rotation (D, D) = identity, centroids (levels, codebook_size, D / levels), config. quant_mse: mean
    squared error per dimension of each item against its reconstruction, over all N items; quant_rel:
    the same relative to the embeddings' variance; quant_cosine: mean cosine of the two.
    """
    return _tokenize(embeddings, fit_ids, cfg, rotate=False)


def opq_codes(embeddings: np.ndarray, fit_ids: np.ndarray, cfg: RQVAEConfig,
              on_step: Callable[[int, dict], None] | None = None) -> tuple[np.ndarray, dict, dict]:
    """OPQ (RPG's tokenizer): `pq_codes` in a rotated space, the rotation learned on the fit items too."""
    return _tokenize(embeddings, fit_ids, cfg, rotate=True)
