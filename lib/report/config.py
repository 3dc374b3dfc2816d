"""The `report` section: which models are the references of the paired tests, and how they are run."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Baseline:
    backbone: str = "sasrec"
    representation: str = "id"


@dataclass(frozen=True)
class ReportConfig:
    baseline: Baseline = field(default_factory=Baseline)  # per protocol, every model is compared with this one
    # per protocol, the reference of the cold-target tests: a model that can rank cold items
    cold_baseline: Baseline = field(default_factory=lambda: Baseline(representation="content"))
    significance_metrics: tuple[str, ...] = ("ndcg@10", "hr@10")  # tested on all test users and cold targets
    n_bootstrap: int = 1000  # user resamples for the CI of the mean difference
    alpha: float = 0.05  # CI level 1 - alpha; Holm-adjusted p threshold
    family: Literal["protocol", "report"] = "protocol"  # Holm over every test of a protocol, or of the report
    seed: int = 0  # bootstrap resampling (the same resamples for every run: common random numbers)
    # split type -> published figures on Beauty for orientation: [{model, hr@10, ndcg@10, source}, ...]
    published: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap: must be >= 1, got {self.n_bootstrap}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha: must be in (0, 1), got {self.alpha}")
        if self.family not in ("protocol", "report"):
            raise ValueError(f"family: must be protocol or report, got {self.family!r}")
        if not self.significance_metrics:
            raise ValueError("significance_metrics: must name at least one metric (hr|ndcg|mrr@K)")
        for m in self.significance_metrics:
            if not re.fullmatch(r"(hr|ndcg|mrr)@\d+", m):
                raise ValueError(f"significance_metrics: {m!r} is not hr|ndcg|mrr@K")
