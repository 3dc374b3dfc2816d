"""Full-softmax cross-entropy over the whole catalogue: loss and gradients in one pass over the logits.

`F.cross_entropy(h @ E.T, y)` materialises an (M, N) logit matrix (M ~ 1k positions x 12k items per
batch) and streams it through memory several times in forward and backward. Here the logits of
`chunk` positions at a time are built once: their softmax gives the loss and, in the same pass,
both gradients ((softmax - onehot) @ E and its transpose @ h), which backward only scales. Three
matmuls and one exp per logit instead of four and two for a loss that recomputes its logits in
backward (this module's previous form), and a working set of O(chunk N) instead of O(M N).
Measured on the loss alone (1,100 positions, 11,800 classes, d = 64, one thread, float32;
benchmarks/bench_loss.py): see reports/NOTES.md, issue 31.
"""
from __future__ import annotations

import math

import torch


class _FusedSoftmaxCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, chunk: int,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        # h (M, d) hidden states, e (C, d) class embeddings, y (M,) class indices in 0..C-1 -> mean loss.
        # `dtype` is the matmuls' input type (bfloat16 pays only on CPUs with native bfloat16 matmuls, AVX-512
        # BF16 or AMX, and is ~10x slower on AVX2-only ones); the logits, softmax and every sum stay float32.
        mm = h.dtype if dtype == torch.float32 else dtype  # float32 = the inputs' own precision (exact)
        hl, el = h.to(mm), e.to(mm)
        grads = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        lse = h.new_zeros(())
        gh = torch.empty_like(h) if grads else None
        ge = torch.zeros_like(e) if grads else None
        for s in range(0, h.shape[0], chunk):
            hs = hl[s:s + chunk]
            z = (hs @ el.T).to(h.dtype)  # (chunk, C) logits
            top = z.amax(1, keepdim=True)
            z.sub_(top).exp_()
            total = z.sum(1, keepdim=True)
            lse += (top + total.log()).sum()
            if grads:  # d loss / d logits = softmax - onehot (per position; the mean's 1/M comes in backward)
                z.div_(total)
                z[torch.arange(z.shape[0], device=z.device), y[s:s + chunk]] -= 1
                zl = z.to(mm)
                gh[s:s + chunk] = (zl @ el).to(h.dtype)
                ge += (zl.T @ hs).to(e.dtype)
        if grads:
            ctx.save_for_backward(gh, ge)
        return (lse - (h * e[y]).sum()) / h.shape[0]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gh, ge = ctx.saved_tensors
        scale = grad / gh.shape[0]
        return gh * scale, ge * scale, None, None, None


def full_softmax_ce(h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, chunk: int = 128,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Summed cross-entropy of logits h @ e.T against y; chunk = 0 materialises all logits at once.

    dtype bfloat16 runs the matmuls in bfloat16 (float32 softmax and sums); float32 is exact.
    """
    if dtype == torch.float32 and (chunk <= 0 or h.shape[0] <= chunk):
        return torch.nn.functional.cross_entropy(h @ e.T, y, reduction="sum")
    return _FusedSoftmaxCE.apply(h, e, y, max(chunk, 1) if chunk > 0 else h.shape[0], dtype) * h.shape[0]


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


def mixed_softmax_ce(h: torch.Tensor, e: torch.Tensor, y: torch.Tensor, target_p: torch.Tensor,
                     n_uniform: int, log_q: bool = True) -> torch.Tensor:
    """Summed sampled-softmax cross-entropy over the batch's own targets plus `n_uniform` uniform items,
    each logit corrected by minus the log of its item's probability of being in that pool (logQ).

    Mixed negative sampling (Yang et al., WWW 2020) with the sampling-bias correction of Yi et al.
    (RecSys 2019). h (M, d) hidden states, e (C, d) class embeddings, y (M,) targets in 0..C-1,
    target_p (C,) each class's share of the training targets. The pool is the *set* of the batch's
    targets and the uniform draws, so every position's target is in it exactly once (no accidental
    hit to mask). A class is in it with probability pi = 1 - (1 - p)^M (1 - 1/C)^K; subtracting
    log pi from every pooled logit, the target's included, makes the loss estimate the full softmax's
    (popular items are in-batch negatives often, and are penalised once per appearance, not more).
    Cost O(M |pool|) instead of O(M C). log_q False drops the correction (for tests and ablations).
    """
    n_classes = e.shape[0]
    draws = torch.randint(0, n_classes, (n_uniform,), device=h.device)
    pool, idx = torch.unique(torch.cat([y, draws]), return_inverse=True)  # sorted pool; idx[:M] = target's column
    logits = h @ e[pool].T  # (M, P)
    if log_q:
        p = target_p[pool].to(logits.dtype)
        log_absent = h.shape[0] * torch.log1p(-p) + n_uniform * math.log1p(-1.0 / n_classes)
        logits = logits - torch.log(-torch.expm1(log_absent))[None, :]
    return torch.nn.functional.cross_entropy(logits, idx[: h.shape[0]], reduction="sum")
