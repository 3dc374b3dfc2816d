"""Paired comparisons of two runs on the same users, and Holm's correction over a family of tests.

A run is compared with the baseline on the per-user values of one metric (same users, same order):
a percentile bootstrap CI of the mean difference plus the Wilcoxon signed-rank test. A difference is
called significant only when the CI excludes 0 and Holm's adjusted p < alpha: the bootstrap speaks
about the mean, Wilcoxon about the paired distribution, and Holm (1979) keeps the chance of any
false claim in the whole family of tests below alpha.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import wilcoxon


def paired_test(base: np.ndarray, other: np.ndarray, n_bootstrap: int, alpha: float, seed: int) -> dict:
    """Per-user values of the baseline and a run on the same users (U,) -> difference statistics.

    Every call with the same seed draws the same resamples (common random numbers across runs).
    """
    d = np.asarray(other, np.float64) - np.asarray(base, np.float64)  # (U,)
    rng = np.random.default_rng(seed)
    boot = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, 100):  # chunks bound the (chunk, U) index matrix
        stop = min(start + 100, n_bootstrap)
        boot[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    # wilcoxon rejects all-zero differences; identical rankings are simply "no evidence"
    p = float(wilcoxon(d).pvalue) if np.any(d) else 1.0
    return {"users": len(d), "baseline": round(float(np.mean(base)), 6), "model": round(float(np.mean(other)), 6),
            "diff": round(float(d.mean()), 6), "ci_low": round(float(lo), 6), "ci_high": round(float(hi), 6),
            "p_value": p}


def control_test(expected: np.ndarray, observed: np.ndarray, alpha: float) -> dict:
    """A model's hits against the random control that fills the same slots, exactly.

    expected (U,): each user's chance that the control's random items hit the target (its expected
    HR@k, lib/evaluate.cold_control); observed (U,) 0/1: the model's hits. Under the null hypothesis
    (the model's cold items are as good as random ones) the number of hits is a sum of independent
    Bernoulli(expected_u): a Poisson-binomial, computed exactly. p = twice the smaller tail (capped
    at 1). A paired test on (hit - expected) would treat the control as if it had no variance and call
    0 hits against 0.3 expected "significantly below". The interval is the null's central 1 - alpha
    range of the mean hit rate minus the expected one: it excludes 0 exactly when the model lies
    outside what chance produces.
    """
    q = np.clip(np.asarray(expected, np.float64), 0.0, 1.0)
    x = int(np.asarray(observed).sum())
    pmf = np.zeros(len(q) + 1)
    pmf[0] = 1.0
    for i, qi in enumerate(q[q > 0]):  # add one Bernoulli: P(k) <- P(k)(1-q) + P(k-1) q
        pmf[1:i + 2] = pmf[1:i + 2] * (1 - qi) + pmf[:i + 1] * qi
        pmf[0] *= 1 - qi
    cdf = np.cumsum(pmf)
    p = min(1.0, 2 * min(cdf[x], 1.0 - (cdf[x - 1] if x > 0 else 0.0)))
    lo_k, hi_k = int(np.searchsorted(cdf, alpha / 2)), int(np.searchsorted(cdf, 1 - alpha / 2))
    n, mean_q = max(1, len(q)), float(q.mean()) if len(q) else 0.0
    return {"users": len(q), "baseline": round(mean_q, 6), "model": round(x / n, 6),
            "diff": round(x / n - mean_q, 6), "ci_low": round(x / n - hi_k / n, 6),
            "ci_high": round(x / n - lo_k / n, 6), "p_value": p}


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest (0-based) of m is scaled by (m - i); adjusted values are made
    monotone by a running maximum and capped at 1. Rejecting where adjusted p < alpha controls the
    family-wise error rate at alpha.
    """
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * float(p_values[idx])))
        adjusted[idx] = running
    return adjusted.tolist()


def mark_significant(tests: list[dict], alpha: float) -> None:
    """Add `p_holm` (over all `tests`, one family) and `significant` to each test in place."""
    for t, p in zip(tests, holm([t["p_value"] for t in tests]), strict=True):
        t["p_holm"] = p
        t["significant"] = bool((t["ci_low"] > 0 or t["ci_high"] < 0) and p < alpha)
