"""Paired comparisons of two models on the same users, and corrections over a family of tests.

A model is compared with a baseline on the per-user values of one metric (same users, same order), each
side already averaged over its seeds: a percentile bootstrap CI of the mean difference plus a two-sided
paired t-test on the per-user differences. `seed_bootstrap` resamples users and seeds together, for a
claim that must also hold over training randomness. `control_test` is the exact test of a model's hits
against the random control that fills the same slots.

Why a t-test and not the Wilcoxon signed-rank test: Wilcoxon tests that the differences are symmetric
about 0, not that their mean is 0, and it drops the (many) zero differences. A seed-averaged hit takes a
few values ({0, 1/3, 2/3, 1} for 3 seeds); one seed against a 3-seed mean of the same model gives a
skewed difference with mean 0 (a rare -1 against frequent +1/3), and so would two models with equal
means but different per-user profiles: Wilcoxon rejects such true nulls almost always. The t-test is
about the mean, which is what the bootstrap CI and the report speak about, and with thousands of users
the central limit theorem makes it calibrated (tests/test_significance.py simulates both).

A difference is called significant when the CI excludes 0 and the adjusted p < alpha: Holm (1979)
bounds the chance of any false claim in the family, Benjamini & Hochberg (1995) the expected share of
false claims among those made. p-values are kept in (0, 1]: floating error is clipped.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t

P_FLOOR = float(np.finfo(np.float64).tiny)  # p-values live in (0, 1]: underflow is "tiny", never 0
FLOAT_NOISE = 1e-12  # per-user values lie in [0, 1]; seed means summed in another order differ by ~1e-16
ADJUSTMENTS = ("holm", "bh", "none")


def _clip_p(p: float) -> float:
    """Floating error out: a p-value in (0, 1]."""
    return float(min(1.0, max(P_FLOOR, p)))


def _summary(base_mean: float, model_mean: float, diff: float, lo: float, hi: float, users: int, p: float,
             test: str) -> dict:
    return {"users": users, "baseline": round(base_mean, 6), "model": round(model_mean, 6), "diff": round(diff, 6),
            "ci_low": round(float(lo), 6), "ci_high": round(float(hi), 6), "p_value": _clip_p(p), "test": test}


def paired_t_p(d: np.ndarray) -> float:
    """Two-sided paired t-test p-value on the per-user differences d (U,): one-sample t of mean(d) = 0.

    No differences (all 0, or U < 2: no variance to estimate) is no evidence: p = 1. A constant non-zero
    difference has no variance: t is infinite and p is the floor.
    """
    d = np.asarray(d, np.float64)
    if len(d) < 2 or not np.any(d):
        return 1.0
    se = float(d.std(ddof=1)) / np.sqrt(len(d))
    if se == 0.0:
        return P_FLOOR
    return _clip_p(2.0 * float(student_t.sf(abs(float(d.mean())) / se, df=len(d) - 1)))


def paired_test(base: np.ndarray, other: np.ndarray, n_bootstrap: int, alpha: float, seed: int) -> dict:
    """Per-user values of the baseline and a model on the same users (U,) -> difference statistics.

    Each side is one value per user, already averaged over that model's seeds. Differences below
    FLOAT_NOISE count as 0. Every call with the same seed draws the same resamples (common random
    numbers across models).
    """
    base, other = np.asarray(base, np.float64), np.asarray(other, np.float64)
    if base.ndim != 1 or base.shape != other.shape or not len(base):
        raise ValueError(f"paired_test: base {base.shape} and other {other.shape} must be the same users (U,), U > 0")
    d = other - base  # (U,)
    d[np.abs(d) < FLOAT_NOISE] = 0.0  # identical values averaged in another order are no difference
    rng = np.random.default_rng(seed)
    boot = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, 100):  # chunks bound the (chunk, U) index matrix
        stop = min(start + 100, n_bootstrap)
        boot[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2]) if np.any(d) else (0.0, 0.0)
    return _summary(float(base.mean()), float(other.mean()), float(d.mean()), lo, hi, len(d), paired_t_p(d),
                    "paired t")


def seed_bootstrap(base_seeds: np.ndarray, other_seeds: np.ndarray, n_bootstrap: int, alpha: float,
                   seed: int) -> dict:
    """Per-user values of each seed, base_seeds (S, U) and other_seeds (S, U) -> difference statistics.

    Each resample draws U users and, on each side independently, S seeds, all with replacement; its
    statistic is the mean over the drawn users and seeds of the model minus that of the baseline. Unlike
    `paired_test` (which treats the trained models as fixed) this also counts the spread between training
    runs. p = twice the smaller share of resampled differences on one side of 0, floored at
    1 / (n_bootstrap + 1). Both sides must hold the same number of seeds: a claim compares like with like.
    Where seed noise is independent across users the user resampling already holds it and this test is
    conservative (about 1% false rejections at alpha = 0.05 in the tests' simulation, 3 seeds a side).
    """
    base_seeds, other_seeds = np.asarray(base_seeds, np.float64), np.asarray(other_seeds, np.float64)
    if base_seeds.ndim != 2 or other_seeds.ndim != 2 or base_seeds.shape[1] != other_seeds.shape[1]:
        raise ValueError(f"seed_bootstrap: base {base_seeds.shape} and other {other_seeds.shape} must be (S, U)")
    (s, u), s_other = base_seeds.shape, other_seeds.shape[0]
    if s != s_other:
        raise ValueError(f"seed_bootstrap: the baseline has {s} seeds and the model {s_other}; compare equal counts")
    if not s or not u:
        raise ValueError("seed_bootstrap: needs at least one seed and one user")
    rng = np.random.default_rng(seed)
    boot = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, 100):
        n = min(start + 100, n_bootstrap) - start
        users = rng.multinomial(u, np.full(u, 1.0 / u), size=n).T  # (U, n): how often each user is drawn
        w_base = rng.multinomial(s, np.full(s, 1.0 / s), size=n)  # (n, S): how often each seed is drawn
        w_other = rng.multinomial(s, np.full(s, 1.0 / s), size=n)
        # (S, U) @ (U, n) -> (S, n) seed totals over the drawn users, weighted by the drawn seeds -> (n,)
        diff = (w_other * (other_seeds @ users).T).sum(1) - (w_base * (base_seeds @ users).T).sum(1)
        boot[start:start + n] = diff / (s * u)
    observed = float(other_seeds.mean() - base_seeds.mean())
    if np.array_equal(base_seeds, other_seeds):
        lo, hi, p = 0.0, 0.0, 1.0  # the same runs on both sides: nothing to test
    else:
        lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
        tail = min(np.mean(boot <= 0), np.mean(boot >= 0))  # ties at 0 count on both sides
        p = max(2.0 * float(tail), 1.0 / (n_bootstrap + 1))
    return _summary(float(base_seeds.mean()), float(other_seeds.mean()), observed, lo, hi, u, p,
                    "bootstrap users x seeds")


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
    # the upper tail summed, not 1 - cdf: that difference rounded to -4.4e-16 in a report
    p = _clip_p(2 * min(cdf[x], float(pmf[x:].sum())))
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


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Benjamini-Hochberg q-values, in the input order.

    Sorted ascending, the i-th smallest (1-based) of m is scaled by m / i; q-values are made monotone by
    a running minimum from the largest down and capped at 1. Rejecting where q < alpha controls the
    false discovery rate at alpha (independent or positively dependent tests).
    """
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 1.0
    for i in range(m - 1, -1, -1):
        running = min(running, m / (i + 1) * float(p_values[order[i]]))
        adjusted[order[i]] = running
    return adjusted.tolist()


def mark_significant(tests: list[dict], alpha: float, method: str = "holm", untested: int = 0) -> None:
    """Add `p_adjusted` (over all `tests`, one family), `adjustment` and `significant` to each test in place.

    method: "holm" (family-wise error), "bh" (false discovery rate) or "none". Significant = the CI
    excludes 0 and the adjusted p < alpha. With "holm", `p_holm` repeats `p_adjusted` (older readers).
    untested: declared members of the family that have not run yet; they count as p = 1, so a declared
    family is adjusted for its full size from the start and a claim never appears just because the
    other comparisons are still missing.
    """
    if method not in ADJUSTMENTS:
        raise ValueError(f"mark_significant: method {method!r} is not one of {', '.join(ADJUSTMENTS)}")
    if untested < 0:
        raise ValueError(f"mark_significant: untested must be >= 0, got {untested}")
    raw = [t["p_value"] for t in tests] + [1.0] * untested
    adjusted = holm(raw) if method == "holm" else benjamini_hochberg(raw) if method == "bh" else list(raw)
    for t, p in zip(tests, adjusted[:len(tests)], strict=True):
        t["p_adjusted"], t["adjustment"] = p, method
        if method == "holm":
            t["p_holm"] = p
        else:
            t.pop("p_holm", None)  # a stale Holm value from an earlier call would mislead
        t["significant"] = bool((t["ci_low"] > 0 or t["ci_high"] < 0) and p < alpha)
