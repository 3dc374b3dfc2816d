"""The report's paired tests, their two families, and what a reader may conclude from each.

Why two families: a claim is only as good as the family it is corrected in. The study's claims are a
few comparisons declared in params before the test figures are read (`report.confirmatory`, current
protocol, test NDCG@10): Holm over exactly those. Every other test the report shows is exploratory:
Benjamini-Hochberg within its scope, and labelled so. Why the seed rule: a ✓/✗ mark compares like with
like, the same number of seeds on both sides and at least `min_claim_seeds` (issue 29: a one-seed run
against a three-seed mean is not a claim); other rows show their interval and say "exploratory".

Every test is lib/significance.paired_test on per-user values averaged over each model's seeds, on the
users both models are measured on (all test users, or the knowable cold targets).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lib.report.config import ReportConfig
from lib.report.models import Models, value_of
from lib.report.scopes import Scope
from lib.significance import control_test, mark_significant, paired_test

CONFIRMATORY, EXPLORATORY = "confirmatory", "exploratory"


@dataclass(frozen=True)
class Request:
    model: str
    reference: str  # a model's name, or "control" (the random cold-slot control of the knowable pool)
    key: str  # value key (models.value_of): test/<m> on all test users, cold/<m> on knowable cold targets


@dataclass
class TestBook:
    """Scope -> (model, reference, key) -> test (lib.significance keys + against, key, seeds, family)."""
    tests: dict[Scope, dict[tuple[str, str, str], dict]] = field(default_factory=dict)

    def get(self, scope: Scope, model: str, reference: str, key: str) -> dict | None:
        return self.tests.get(scope, {}).get((model, reference, key))

    def of(self, scope: Scope) -> list[dict]:
        return list(self.tests.get(scope, {}).values())


def _users(models: Models, model: str, reference: str) -> None:
    a, b = models.values[model]["user"].to_numpy(), models.values[reference]["user"].to_numpy()
    if not np.array_equal(a, b):
        raise ValueError(f"run {model!r}: its test users differ from those of {reference!r} (same scope)")


def one_test(models: Models, req: Request, cfg: ReportConfig) -> dict | None:
    """A request -> its test, None when no user is measured (no knowable cold target, no control column)."""
    v, mask = value_of(models.values[req.model], req.key)
    head = {"model_name": req.model, "against": req.reference, "key": req.key,
            "model_seeds": models.n_seeds(req.model)}
    if req.reference == "control":  # the exact test needs 0/1 hits: one seed only (an average of hits is not one)
        q, qmask = value_of(models.values[req.model], "control/" + req.key.split("/", 1)[1])
        use = mask & qmask
        if not use.any() or models.n_seeds(req.model) != 1:
            return None
        return head | {"reference_seeds": 0, **control_test(q[use], v[use], cfg.alpha), "test": "exact control"}
    _users(models, req.model, req.reference)
    base, bmask = value_of(models.values[req.reference], req.key)
    use = mask & bmask
    if not use.any():
        return None
    return head | {"reference_seeds": models.n_seeds(req.reference),
                   **paired_test(base[use], v[use], cfg.n_bootstrap, cfg.alpha, cfg.seed)}


def run_tests(requests: dict[Scope, list[Request]], confirmatory: dict[Scope, set[Request]], models: Models,
              cfg: ReportConfig) -> TestBook:
    """Every requested test once per scope; Holm over each scope's confirmatory requests, BH over the rest.

    The confirmatory family is adjusted for its declared size (params report.confirmatory): comparisons not
    run yet count as p = 1, so running fewer of them never makes a claim easier.
    """
    book = TestBook()
    for scope, reqs in requests.items():
        done: dict[tuple[str, str, str], dict] = {}
        for r in dict.fromkeys(reqs):  # requests in first-asked order, each once
            t = one_test(models, r, cfg)
            if t is not None:
                t["family"] = CONFIRMATORY if r in confirmatory.get(scope, set()) else EXPLORATORY
                done[(r.model, r.reference, r.key)] = t
        for family, method in ((CONFIRMATORY, "holm"), (EXPLORATORY, "bh")):
            tests = [t for t in done.values() if t["family"] == family]
            untested = max(0, len(cfg.confirmatory) - len(tests)) if family == CONFIRMATORY and tests else 0
            mark_significant(tests, cfg.alpha, method, untested)
        book.tests[scope] = done
    return book


def claimable(t: dict, cfg: ReportConfig) -> bool:
    """Same number of seeds on both sides, at least `min_claim_seeds`."""
    return t["model_seeds"] == t["reference_seeds"] >= cfg.min_claim_seeds


def seeds_text(t: dict) -> str:
    a, b = t["model_seeds"], t["reference_seeds"]
    return f"{a} vs {b} seeds" if a != b else f"{a} seed{'s' * (a > 1)} each"


def adjustment(t: dict) -> str:
    return "Holm" if t["family"] == CONFIRMATORY else "BH, exploratory"


def mark(t: dict | None, cfg: ReportConfig) -> str:
    """The table's mark: ✓/✗ (significant better/worse) only for a claimable comparison; else why not."""
    if t is None:
        return "–"
    if not claimable(t, cfg):
        return f"exploratory ({seeds_text(t)})"
    if t["significant"]:
        return f"{'✓' if t['diff'] > 0 else '✗'} ({adjustment(t)})"
    return f"n.s. ({adjustment(t)})"


def verdict(t: dict, cfg: ReportConfig) -> str:
    """The same verdict as `mark`, in words, for an answer sentence."""
    if not claimable(t, cfg):
        return f"no claim: exploratory, {seeds_text(t)}"
    if t["significant"]:
        return f"significantly {'better' if t['diff'] > 0 else 'worse'} ({adjustment(t)})"
    return f"not significantly different ({adjustment(t)})"


def fmt_p(p: float | None) -> str:
    """A p-value cell: 2 significant digits, never 0 or negative (below 1e-4: "<0.0001")."""
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.2g}"


def diff_cell(t: dict | None) -> str:
    """Difference with its CI: "+0.0012 [-0.0003, +0.0027]"."""
    if t is None:
        return "–"
    return f"{t['diff']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]"
