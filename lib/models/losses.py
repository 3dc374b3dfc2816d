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
    def forward(ctx, h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
        # h (M, d) hidden states, e (C, d) class embeddings, y (M,) class indices in 0..C-1
        lse = torch.empty(h.shape[0], dtype=h.dtype, device=h.device)
        for s in range(0, h.shape[0], chunk):
            lse[s:s + chunk] = torch.logsumexp(h[s:s + chunk] @ e.T, dim=1)  # (chunk,)
        target = (h * e[y]).sum(1)  # (M,)
        ctx.save_for_backward(h, e, y, lse)
        ctx.chunk = chunk
        return (lse - target).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, e, y, lse = ctx.saved_tensors
        scale = grad / h.shape[0]
        gh = torch.empty_like(h)
        ge = torch.zeros_like(e)
        for s in range(0, h.shape[0], ctx.chunk):
            hs = h[s:s + ctx.chunk]
            p = torch.exp(hs @ e.T - lse[s:s + ctx.chunk, None])  # softmax (chunk, C)
            p[torch.arange(p.shape[0], device=p.device), y[s:s + ctx.chunk]] -= 1  # d loss / d logits
            p *= scale
            gh[s:s + ctx.chunk] = p @ e
            ge += p.T @ hs
        return gh, ge, None, None


def full_softmax_ce(h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """Summed cross-entropy of logits h @ e.T against y; chunk = 0 materialises all logits at once."""
    if chunk <= 0 or h.shape[0] <= chunk:
        return torch.nn.functional.cross_entropy(h @ e.T, y, reduction="sum")
    return _ChunkedSoftmaxCE.apply(h, e, y, chunk) * h.shape[0]
