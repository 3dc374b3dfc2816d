"""lib.significance: the paired t-test by hand, its calibration on simulated seed-averaged metrics, the
users x seeds bootstrap, Holm and Benjamini-Hochberg by hand, the significance rule, the exact control test."""
from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest
from scipy.stats import binom, ttest_rel, wilcoxon

from lib.significance import (
    P_FLOOR,
    benjamini_hochberg,
    control_test,
    holm,
    mark_significant,
    paired_test,
    seed_bootstrap,
)

KEYS = {"users", "baseline", "model", "diff", "ci_low", "ci_high", "p_value", "test"}

# --- the paired t-test by hand ------------------------------------------------------------------------------


def test_paired_t_p_matches_the_hand_formula():
    base, other = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 0.0, 2.0, 3.0])
    # d = [1, -1, 2, 2]: mean 1, sd sqrt(6/3) = sqrt(2), se = sqrt(2)/2, t = sqrt(2), 3 degrees of freedom;
    # Student's t with 3 df: P(|T| > t) = 1 - (2/pi) (t / (sqrt(3) (1 + t^2/3)) + atan(t / sqrt(3)))
    t = math.sqrt(2)
    hand = 1 - 2 / math.pi * (t / (math.sqrt(3) * (1 + t * t / 3)) + math.atan(t / math.sqrt(3)))
    res = paired_test(base, other, n_bootstrap=50, alpha=0.05, seed=0)
    assert res["p_value"] == pytest.approx(hand, rel=1e-9)
    assert res["p_value"] == pytest.approx(ttest_rel(other, base).pvalue, rel=1e-9)
    assert res["test"] == "paired t" and set(res) == KEYS


def test_paired_identical_inputs(rng):
    x = rng.random(200)
    res = paired_test(x, x.copy(), n_bootstrap=200, alpha=0.05, seed=0)
    assert res["diff"] == 0 and res["p_value"] == 1.0
    assert res["ci_low"] == res["ci_high"] == 0
    assert res["users"] == 200 and res["baseline"] == res["model"] == round(float(x.mean()), 6)


def test_paired_floating_error_is_no_evidence_and_p_stays_in_0_1(rng):
    seeds = rng.random((3, 500)) / 7
    base, other = (seeds[0] + seeds[1] + seeds[2]) / 3, (seeds[2] + seeds[1] + seeds[0]) / 3  # another order
    assert np.any(base != other) and np.abs(base - other).max() < 1e-15  # the rounding differs
    res = paired_test(base, other, n_bootstrap=100, alpha=0.05, seed=0)
    assert res["p_value"] == 1.0 and res["ci_low"] == res["ci_high"] == 0
    # a constant difference has no variance (t infinite) and a huge one underflows: floored, never 0
    flat = paired_test(np.zeros(50), np.full(50, 0.25), n_bootstrap=50, alpha=0.05, seed=0)
    huge = paired_test(np.zeros(5000), 1 + rng.random(5000) * 1e-3, n_bootstrap=20, alpha=0.05, seed=0)
    assert flat["p_value"] == huge["p_value"] == P_FLOOR > 0
    one = paired_test(np.zeros(1), np.ones(1), n_bootstrap=20, alpha=0.05, seed=0)
    assert one["p_value"] == 1.0  # one user: no variance to estimate, no evidence


def test_paired_rejects_mismatched_users():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        paired_test(np.zeros(3), np.zeros(4), n_bootstrap=10, alpha=0.05, seed=0)


def test_paired_constant_difference_has_a_point_ci():
    base = np.zeros(50)
    res = paired_test(base, base + 0.25, n_bootstrap=100, alpha=0.05, seed=3)
    assert res["diff"] == res["ci_low"] == res["ci_high"] == 0.25 and res["model"] == 0.25


def test_paired_clearly_better(rng):
    base = (rng.random(300) < 0.1).astype(float)
    better = np.maximum(base, (rng.random(300) < 0.5).astype(float))
    res = paired_test(base, better, n_bootstrap=300, alpha=0.05, seed=0)
    assert res["diff"] == pytest.approx(better.mean() - base.mean(), abs=1e-6)
    assert 0 < res["ci_low"] <= res["diff"] <= res["ci_high"]
    assert 0 < res["p_value"] < 1e-10
    assert paired_test(base, better, n_bootstrap=300, alpha=0.05, seed=0) == res  # seeded
    worse = paired_test(better, base, n_bootstrap=300, alpha=0.05, seed=0)  # the mirror image
    assert worse["diff"] == -res["diff"] and worse["ci_high"] < 0
    assert worse["p_value"] == pytest.approx(res["p_value"])


def test_paired_seed_changes_only_the_bootstrap(rng):
    base, other = rng.random(80), rng.random(80)
    a = paired_test(base, other, n_bootstrap=200, alpha=0.05, seed=0)
    b = paired_test(base, other, n_bootstrap=200, alpha=0.05, seed=1)
    assert a["diff"] == b["diff"] and a["p_value"] == b["p_value"]
    assert (a["ci_low"], a["ci_high"]) != (b["ci_low"], b["ci_high"])


def test_paired_ci_narrows_with_alpha(rng):
    base, other = rng.random(100), rng.random(100) + 0.05
    wide = paired_test(base, other, n_bootstrap=500, alpha=0.01, seed=0)
    narrow = paired_test(base, other, n_bootstrap=500, alpha=0.2, seed=0)
    assert wide["ci_low"] < narrow["ci_low"] <= narrow["ci_high"] < wide["ci_high"]


# --- calibration on simulated seeds of one model --------------------------------------------------------------

USERS, SIMS, ALPHA = 2000, 400, 0.05


def _seeds(rng: np.random.Generator, q: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n synthetic seeds of a model whose user u hits with chance q_u -> HR@10 (n, U), NDCG@10 (n, U).

    Seeds are independent given q; a hit sits at a uniform rank r in 1..10 and scores 1 / log2(r + 1).
    """
    hit = rng.random((n, len(q))) < q  # (n, U)
    rank = rng.integers(1, 11, size=hit.shape)
    return hit.astype(np.float64), np.where(hit, 1 / np.log2(rank + 1), 0.0)


@cache
def _simulate(a_seeds: int, b_seeds: int, lift: float, sims: int, seed: int) -> dict[str, np.ndarray]:
    """p-values of `sims` comparisons: side A = mean of a_seeds seeds, side B = mean of b_seeds other seeds
    of the same model with every q_u times `lift` (1: the null holds). Keys: hr@10, ndcg@10 (paired_test)
    and wilcoxon_hr@10, pratt_hr@10, wilcoxon_ndcg@10 (the old test, for the guard)."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {}
    for _ in range(sims):
        q = rng.beta(0.3, 7, USERS)  # (U,): skewed like real hit rates, mean ~0.04
        (hr_a, ndcg_a), (hr_b, ndcg_b) = _seeds(rng, q, a_seeds), _seeds(rng, np.minimum(1, q * lift), b_seeds)
        for m, a, b in (("hr@10", hr_a.mean(0), hr_b.mean(0)), ("ndcg@10", ndcg_a.mean(0), ndcg_b.mean(0))):
            out.setdefault(m, []).append(paired_test(a, b, n_bootstrap=10, alpha=ALPHA, seed=0)["p_value"])
            out.setdefault(f"wilcoxon_{m}", []).append(wilcoxon(b - a).pvalue)
        out.setdefault("pratt_hr@10", []).append(wilcoxon(hr_b.mean(0) - hr_a.mean(0), zero_method="pratt").pvalue)
    return {k: np.array(v) for k, v in out.items()}


@pytest.mark.parametrize("a_seeds", [3, 1], ids=["3-vs-3", "1-vs-3"])
@pytest.mark.parametrize("metric", ["hr@10", "ndcg@10"])
def test_paired_test_is_calibrated_under_the_null(a_seeds, metric):
    p = _simulate(a_seeds, 3, 1.0, SIMS, seed=a_seeds)[metric]
    assert np.all((p > 0) & (p <= 1))
    assert 0.02 <= np.mean(p < ALPHA) <= 0.09, np.mean(p < ALPHA)


def test_the_simulation_catches_a_miscalibrated_test():
    """Guard: on the same 1-seed-vs-3-seed-mean simulation Wilcoxon leaves the calibration band. The
    difference of 1 seed and a 3-seed mean is skewed (a rare -1 against frequent +1/3) though its mean is 0;
    keeping the zero differences (Pratt) Wilcoxon rejects nearly always, dropping them (scipy's default, the
    old lib/significance.py) it still rejects far too often on NDCG@10."""
    sim = _simulate(1, 3, 1.0, SIMS, seed=1)
    assert np.mean(sim["pratt_hr@10"] < ALPHA) > 0.5
    assert np.mean(sim["wilcoxon_ndcg@10"] < ALPHA) > 0.15


@pytest.mark.parametrize("metric", ["hr@10", "ndcg@10"])
def test_paired_test_detects_a_30_percent_lift(metric):
    p = _simulate(3, 3, 1.3, 200, seed=7)[metric]
    assert np.mean(p < ALPHA) > 0.8, np.mean(p < ALPHA)


# --- the users x seeds bootstrap ------------------------------------------------------------------------------


def test_seed_bootstrap_needs_equal_seed_counts(rng):
    with pytest.raises(ValueError, match=r"3 seeds.*1"):
        seed_bootstrap(rng.random((3, 20)), rng.random((1, 20)), n_bootstrap=10, alpha=0.05, seed=0)
    with pytest.raises(ValueError, match=r"\(S, U\)"):
        seed_bootstrap(rng.random((3, 20)), rng.random((3, 21)), n_bootstrap=10, alpha=0.05, seed=0)


def test_seed_bootstrap_keys_identity_and_seeding(rng):
    x = rng.random((3, 100))
    same = seed_bootstrap(x, x.copy(), n_bootstrap=100, alpha=0.05, seed=0)
    assert set(same) == KEYS and same["test"] == "bootstrap users x seeds"
    assert same["diff"] == 0 and same["p_value"] == 1.0 and same["ci_low"] == same["ci_high"] == 0
    other = x + 0.3 + 0.1 * rng.random((3, 100))  # far above the spread of the seed means
    res = seed_bootstrap(x, other, n_bootstrap=200, alpha=0.05, seed=0)
    assert res == seed_bootstrap(x, other, n_bootstrap=200, alpha=0.05, seed=0)
    assert res["diff"] == pytest.approx(other.mean() - x.mean(), abs=1e-6) and res["users"] == 100
    assert 0 < res["ci_low"] <= res["diff"] <= res["ci_high"]
    assert res["p_value"] == pytest.approx(1 / 201)  # every resample above 0: the floor


def test_seed_bootstrap_is_sane_under_the_null_and_detects_a_large_effect():
    rng = np.random.default_rng(11)
    rejections = {1.0: 0, 2.0: 0}
    for lift, sims in ((1.0, 100), (2.0, 20)):
        for _ in range(sims):
            q = rng.beta(0.3, 7, USERS)
            a, b = _seeds(rng, q, 3)[0], _seeds(rng, np.minimum(1, q * lift), 3)[0]  # HR@10 of 3 seeds each
            p = seed_bootstrap(a, b, n_bootstrap=200, alpha=ALPHA, seed=0)["p_value"]
            assert 1 / 201 <= p <= 1
            rejections[lift] += p < ALPHA
    assert rejections[1.0] / 100 <= 0.12, rejections
    assert rejections[2.0] / 20 >= 0.9, rejections


# --- multiple testing -----------------------------------------------------------------------------------------


def test_holm_hand_computed():
    # sorted: 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_handles_edge_cases():
    assert holm([0.5, 0.6, 0.9]) == [1.0, 1.0, 1.0]  # 1.5, 1.2 capped; 0.9 raised to the running max
    assert holm([]) == []
    assert holm([0.03]) == pytest.approx([0.03])  # one test: nothing to correct
    assert holm([0.01, 0.01]) == pytest.approx([0.02, 0.02])  # ties share the larger factor's value


def test_holm_invariants(rng):
    p = rng.random(40) ** 3  # many small p-values
    adj = np.array(holm(p.tolist()))
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)  # monotone in the raw p-value
    assert adj[order[0]] == pytest.approx(min(1.0, len(p) * p[order[0]]))  # the smallest: Bonferroni
    assert adj[order[-1]] == pytest.approx(max(p[order[-1]], adj[order[-2]]))


def test_benjamini_hochberg_hand_computed():
    # sorted: 0.005 x 4/1 = 0.02, 0.01 x 4/2 = 0.02, 0.03 x 4/3 = 0.04, 0.04 x 4/4 = 0.04 -> running min from the top
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    # 0.02 x 3/1 = 0.06 is lowered to 0.03 x 3/2 = 0.045 by the running minimum; 0.9 stays
    assert benjamini_hochberg([0.03, 0.02, 0.9]) == pytest.approx([0.045, 0.045, 0.9])


def test_benjamini_hochberg_edge_cases_and_invariants(rng):
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([0.03]) == pytest.approx([0.03])
    assert benjamini_hochberg([0.01, 0.01]) == pytest.approx([0.01, 0.01])  # ties: m/m = 1 for the pair
    assert benjamini_hochberg([0.6, 0.7, 0.9]) == pytest.approx([0.9, 0.9, 0.9])  # 0.6 x 3 capped, then min
    assert max(benjamini_hochberg([0.8, 0.9])) <= 1.0
    p = rng.random(40) ** 3
    q = np.array(benjamini_hochberg(p.tolist()))
    order = np.argsort(p)
    assert np.all(q >= p - 1e-15) and np.all(q <= 1.0) and np.all(np.diff(q[order]) >= 0)
    assert np.all(q <= np.array(holm(p.tolist())) + 1e-15)  # the false discovery rate is the milder target
    assert q[order[-1]] == pytest.approx(p[order[-1]])  # the largest is not scaled


def _t(p: float, lo: float = 0.01, hi: float = 0.02) -> dict:
    return {"p_value": p, "ci_low": lo, "ci_high": hi}


def test_mark_significant_needs_holm_p_below_alpha():
    tests = [_t(0.01), _t(0.04), _t(0.03), _t(0.005)]  # every CI excludes 0
    mark_significant(tests, alpha=0.05)
    assert [t["p_holm"] for t in tests] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert all(t["p_adjusted"] == t["p_holm"] and t["adjustment"] == "holm" for t in tests)
    # 0.04 and 0.03 are below alpha uncorrected, not after Holm
    assert [t["significant"] for t in tests] == [True, False, False, True]
    assert all(isinstance(t["significant"], bool) for t in tests)


def test_mark_significant_methods():
    bh = [_t(0.01), _t(0.04), _t(0.03), _t(0.005)]
    mark_significant(bh, alpha=0.05, method="bh")
    assert [t["p_adjusted"] for t in bh] == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert all(t["significant"] and t["adjustment"] == "bh" and "p_holm" not in t for t in bh)
    raw = [_t(0.04), _t(0.06)]
    mark_significant(raw, alpha=0.05, method="none")
    assert [t["p_adjusted"] for t in raw] == [0.04, 0.06] and [t["significant"] for t in raw] == [True, False]
    again = [_t(0.01)]
    mark_significant(again, alpha=0.05)
    mark_significant(again, alpha=0.05, method="bh")
    assert "p_holm" not in again[0]  # no stale Holm value after a change of method
    with pytest.raises(ValueError, match="bonferroni.*holm, bh, none"):
        mark_significant([_t(0.01)], alpha=0.05, method="bonferroni")


def test_mark_significant_needs_the_ci_to_exclude_zero():
    tests = [_t(1e-6, lo=-0.01, hi=0.02),  # tiny p but the CI straddles 0
             _t(1e-6, lo=-0.03, hi=-0.01),  # significantly worse counts too
             _t(1e-6, lo=0.0, hi=0.02)]  # a CI touching 0 does not exclude it
    mark_significant(tests, alpha=0.05)
    assert [t["significant"] for t in tests] == [False, True, False]


def test_mark_significant_family_size_matters():
    alone = [_t(0.02)]
    mark_significant(alone, alpha=0.05)
    crowd = [_t(0.02), _t(0.5), _t(0.6)]  # the same test among three: 0.02 x 3 = 0.06
    mark_significant(crowd, alpha=0.05)
    assert alone[0]["significant"] and not crowd[0]["significant"]
    assert crowd[0]["p_holm"] == pytest.approx(0.06)
    mark_significant([], alpha=0.05)  # an empty family is no error


# --- the exact control test -----------------------------------------------------------------------------------


def test_control_test_is_the_exact_poisson_binomial():
    t = control_test(np.array([0.5, 0.5]), np.array([1, 1]), 0.05)  # P(X >= 2) = 0.25 -> two-sided 0.5
    assert t["p_value"] == pytest.approx(0.5) and t["diff"] == pytest.approx(0.5)
    t = control_test(np.array([0.5, 0.5]), np.array([0, 1]), 0.05)  # the mode: no evidence
    assert t["p_value"] == pytest.approx(1.0)
    rare = np.full(1364, 2.25e-4)  # 0.3 hits expected by chance
    t = control_test(rare, np.zeros(1364), 0.05)
    assert t["p_value"] == pytest.approx(1.0) and t["ci_low"] <= 0 <= t["ci_high"]  # 0 hits: not "below"
    t = control_test(np.full(1000, 0.005), np.r_[np.ones(30), np.zeros(970)], 0.05)  # 30 hits vs 5 expected
    assert t["p_value"] == pytest.approx(2 * binom.sf(29, 1000, 0.005), rel=1e-6)  # equal q: the binomial
    assert t["ci_low"] > 0


def test_control_test_p_is_never_negative():
    # 89 hits of 100 at q = 0.5: 1 - cdf(88) rounds to -4.4e-16; the summed tail keeps the true ~3e-15
    t = control_test(np.full(100, 0.5), np.r_[np.ones(89), np.zeros(11)], 0.05)
    assert 0 < t["p_value"] == pytest.approx(2 * binom.sf(88, 100, 0.5), rel=1e-6)
    t = control_test(np.full(300, 0.9), np.ones(300), 0.05)  # every user hits: the far tail underflows
    assert 0 < t["p_value"] <= 1


def test_a_declared_family_is_adjusted_for_its_full_size():
    """Comparisons declared but not run yet count as p = 1: running fewer of them never makes a claim easier."""
    tests = [{"p_value": 0.02, "ci_low": 0.1, "ci_high": 0.2}]
    mark_significant(tests, 0.05, "holm")
    assert tests[0]["significant"] and tests[0]["p_adjusted"] == pytest.approx(0.02)
    mark_significant(tests, 0.05, "holm", untested=4)
    assert tests[0]["p_adjusted"] == pytest.approx(0.10) and not tests[0]["significant"]
    with pytest.raises(ValueError, match="untested"):
        mark_significant(tests, 0.05, "holm", untested=-1)
