"""The `report` section: which models answer which question, which comparisons are claims, how tests run.

Why questions list models by name: a question compares a handful of chosen models, and the reader adds
one by adding its name (a model is named after its run without a `train.seed` override). The name is
looked up, never parsed: what a model is comes from its run.json. The confirmatory family is declared
the same way, so the claims the study makes are fixed before the test figures are read (issue 29).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

METRIC = re.compile(r"(hr|ndcg|mrr)@\d+")


@dataclass(frozen=True)
class Baseline:
    backbone: str = "sasrec"
    representation: str = "id"


@dataclass(frozen=True)
class Question:
    """One section of RESULTS.md: a question, the models that answer it and their references.

    A row is compared with the first reference present in the table's scope that shares its run.json
    `family`, else its `backbone`, else the first present reference: SASRec rows against SASRec-ID,
    GPT-2 rows against GPT-2-ID, RPG's tokenizers against RPG on OPQ codes.
    """
    title: str  # the question, as the section's heading
    models: tuple[str, ...]  # the models compared (references included), by name
    references: tuple[str, ...]  # reference models, by name (see above)
    target: Literal["all", "cold"] = "all"  # all test users (NDCG@10) | knowable cold targets (HR@10 + control)


@dataclass(frozen=True)
class ReportConfig:
    dataset: str = "Beauty"  # this pipeline's dataset, as the report (and the compare stage) names it
    protocol: str = "gts"  # the protocol the questions are answered under (and the anchor of the protocol section)
    protocol_version: int = 2  # run.json protocol_version of the current protocol; older runs are superseded
    questions: dict[str, Question] = field(default_factory=dict)  # section key -> question, in the report's order
    # [model, reference] pairs (names) compared on test `confirmatory_metric` in the current `protocol`: the
    # study's claims, Holm-adjusted over this family only; every other test is exploratory (Benjamini-Hochberg)
    confirmatory: tuple[tuple[str, ...], ...] = ()
    confirmatory_metric: str = "ndcg@10"
    min_claim_seeds: int = 3  # a ✓/✗ mark needs this many seeds on both sides, and as many on each
    max_rows: int = 8  # rows of an answer table: references, then the others best on validation first
    baseline: Baseline = field(default_factory=Baseline)  # appendix leaderboards: every model vs this one
    significance_metrics: tuple[str, ...] = ("ndcg@10", "hr@10")  # tested against the baseline in the appendices
    n_bootstrap: int = 1000  # user resamples for the CI of the mean difference
    alpha: float = 0.05  # CI level 1 - alpha; adjusted p threshold
    seed: int = 0  # bootstrap resampling (the same resamples for every model: common random numbers)
    # published figures on Beauty: {model, source, scopes: [appendix scope names it is comparable with],
    # like: {run.json key: value} (our models it sits beside), hr@10, ndcg@10}
    published: tuple[dict[str, Any], ...] = ()

    def validate(self) -> None:
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap: must be >= 1, got {self.n_bootstrap}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha: must be in (0, 1), got {self.alpha}")
        if self.min_claim_seeds < 2:
            raise ValueError(f"min_claim_seeds: must be >= 2 (a spread needs two seeds), got {self.min_claim_seeds}")
        if self.max_rows < 2:
            raise ValueError(f"max_rows: must be >= 2, got {self.max_rows}")
        for name in ("significance_metrics",):
            if not getattr(self, name):
                raise ValueError(f"{name}: must name at least one metric (hr|ndcg|mrr@K)")
        for m in (*self.significance_metrics, self.confirmatory_metric):
            if not METRIC.fullmatch(m):
                raise ValueError(f"significance_metrics/confirmatory_metric: {m!r} is not hr|ndcg|mrr@K")
        for i, pair in enumerate(self.confirmatory):
            if len(pair) != 2 or pair[0] == pair[1]:
                raise ValueError(f"confirmatory[{i}]: must be [model, reference] of two names, got {list(pair)}")
        for key, q in self.questions.items():
            if not q.models or not q.references:
                raise ValueError(f"questions.{key}: needs models and references")
            missing = [r for r in q.references if r not in q.models]
            if missing:
                raise ValueError(f"questions.{key}.references: {missing} not in its models")
        for i, p in enumerate(self.published):
            lacking = sorted({"model", "source", "scopes"} - set(p))
            if lacking:
                raise ValueError(f"published[{i}]: missing key(s) {lacking}")
            unknown = sorted(set(p) - {"model", "source", "scopes", "like", "hr@10", "ndcg@10"})
            if unknown:
                raise ValueError(f"published[{i}]: unknown key(s) {unknown}")
            if not isinstance(p["scopes"], list) or not isinstance(p.get("like", {}), dict):
                raise ValueError(f"published[{i}]: scopes must be a list of scope names, like a mapping")
