"""lib.significance: Holm's correction by hand, the paired bootstrap + Wilcoxon test, the significance rule."""
from __future__ import annotations

import numpy as np
import pytest

from lib.significance import holm, mark_significant, paired_test


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


def test_paired_identical_inputs(rng):
    x = rng.random(200)
    res = paired_test(x, x.copy(), n_bootstrap=200, alpha=0.05, seed=0)
    assert res["diff"] == 0 and res["p_value"] == 1.0
    assert res["ci_low"] == res["ci_high"] == 0
    assert res["users"] == 200 and res["baseline"] == res["model"] == round(float(x.mean()), 6)


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
    assert res["p_value"] < 1e-10
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


def _t(p: float, lo: float = 0.01, hi: float = 0.02) -> dict:
    return {"p_value": p, "ci_low": lo, "ci_high": hi}


def test_mark_significant_needs_holm_p_below_alpha():
    tests = [_t(0.01), _t(0.04), _t(0.03), _t(0.005)]  # every CI excludes 0
    mark_significant(tests, alpha=0.05)
    assert [t["p_holm"] for t in tests] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # 0.04 and 0.03 are below alpha uncorrected, not after Holm
    assert [t["significant"] for t in tests] == [True, False, False, True]
    assert all(isinstance(t["significant"], bool) for t in tests)


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


def test_control_test_is_the_exact_poisson_binomial():
    from lib.significance import control_test
    t = control_test(np.array([0.5, 0.5]), np.array([1, 1]), 0.05)  # P(X >= 2) = 0.25 -> two-sided 0.5
    assert t["p_value"] == pytest.approx(0.5) and t["diff"] == pytest.approx(0.5)
    t = control_test(np.array([0.5, 0.5]), np.array([0, 1]), 0.05)  # the mode: no evidence
    assert t["p_value"] == pytest.approx(1.0)
    rare = np.full(1364, 2.25e-4)  # 0.3 hits expected by chance
    t = control_test(rare, np.zeros(1364), 0.05)
    assert t["p_value"] == pytest.approx(1.0) and t["ci_low"] <= 0 <= t["ci_high"]  # 0 hits: not "below"
    t = control_test(np.full(1000, 0.005), np.r_[np.ones(30), np.zeros(970)], 0.05)  # 30 hits vs 5 expected
    from scipy.stats import binom
    assert t["p_value"] == pytest.approx(2 * binom.sf(29, 1000, 0.005), rel=1e-6)  # equal q: the binomial
    assert t["ci_low"] > 0
