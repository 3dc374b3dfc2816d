"""Full-softmax cross-entropy over the whole catalogue, computed in chunks of positions.

`F.cross_entropy(h @ E.T, y)` materialises an (M, N) logit matrix (M ~ 8k positions x 12k
items = 390 MB per batch) and streams it through memory several times in forward and
backward. Here the logits of `chunk` positions at a time are built, reduced to a logsumexp,
and rebuilt in backward: the same values and gradients, with a working set that stays in
cache. Measured on this project's 2-core CPU (8,000 positions, d=64, loss forward+backward):
0.63 s unchunked vs 0.28-0.46 s with chunks of 128-512; a whole SASRec epoch went from 20.0 s
to 17.5 s. Peak memory of the loss drops from O(M N) to O(chunk N).
"""
from __future__ import annotations

import torch


class _ChunkedSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, chunk: int,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # h (M, d) hidden states, e (C, d) class embeddings, y (M,) class indices in 0..C-1;
        # `dtype` is the matmuls' input type (bfloat16: ~9x faster on CPUs with AVX-512 BF16), while the
        # logits, logsumexp, softmax and every accumulation stay float32.
        mm = h.dtype if dtype == torch.float32 else dtype  # float32 = the inputs' own precision (exact)
        hl, el = h.to(mm), e.to(mm)
        lse = torch.empty(h.shape[0], dtype=h.dtype, device=h.device)
        for s in range(0, h.shape[0], chunk):
            lse[s:s + chunk] = torch.logsumexp((hl[s:s + chunk] @ el.T).to(h.dtype), dim=1)  # (chunk,)
        target = (h * e[y]).sum(1)  # (M,)
        ctx.save_for_backward(h, e, y, lse)
        ctx.chunk, ctx.dtype = chunk, mm
        return (lse - target).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, e, y, lse = ctx.saved_tensors
        scale = grad / h.shape[0]
        hl, el = h.to(ctx.dtype), e.to(ctx.dtype)
        gh = torch.empty_like(h)
        ge = torch.zeros_like(e)
        for s in range(0, h.shape[0], ctx.chunk):
            hs = hl[s:s + ctx.chunk]
            p = torch.exp((hs @ el.T).to(h.dtype) - lse[s:s + ctx.chunk, None])  # softmax (chunk, C)
            p[torch.arange(p.shape[0], device=p.device), y[s:s + ctx.chunk]] -= 1  # d loss / d logits
            p *= scale
            pl = p.to(ctx.dtype)
            gh[s:s + ctx.chunk] = (pl @ el).to(h.dtype)
            ge += (pl.T @ hs).to(e.dtype)
        return gh, ge, None, None, None


def full_softmax_ce(h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, chunk: int = 128,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Summed cross-entropy of logits h @ e.T against y; chunk = 0 materialises all logits at once.

    dtype bfloat16 runs the chunked path's matmuls in bfloat16 (float32 softmax and sums): measured
    on this project's AVX-512 BF16 CPU, one thread, the loss ~4x faster; quality against float32 in README.
    """
    if dtype == torch.float32 and (chunk <= 0 or h.shape[0] <= chunk):
        return torch.nn.functional.cross_entropy(h @ e.T, y, reduction="sum")
    return _ChunkedSoftmaxCE.apply(h, e, y, max(chunk, 1) if chunk > 0 else h.shape[0], dtype) * h.shape[0]


def sampled_softmax_ce(h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, n_negatives: int) -> torch.Tensor:
    """Summed cross-entropy of each position's target against `n_negatives` items shared by the batch.

    h (M, d) hidden states, e (C, d) class embeddings, y (M,) targets in 0..C-1. Negatives are drawn
    uniformly from the C classes (with replacement; torch's global generator, so seeded runs repeat);
    a negative equal to a position's target is masked out ("accidental hit"). With uniform sampling the
    logQ correction of sampled softmax is a constant and drops out. Cost O(M * n_negatives) instead of
    O(M * C): the option `train.loss: sampled` trades exactness for speed; its quality against full CE
    is measured on validation (README).
    """
    neg = torch.randint(0, e.shape[0], (n_negatives,), device=h.device)  # (K,)
    pos = (h * e[y]).sum(1, keepdim=True)  # (M, 1)
    logits = h @ e[neg].T  # (M, K)
    logits = logits.masked_fill(neg[None, :] == y[:, None], float("-inf"))
    return (torch.logsumexp(torch.cat([pos, logits], 1), 1) - pos[:, 0]).sum()
