"""reports/RESULTS.md: the study's write-up, rendered from committed per-run files only (never typed by hand).

Inputs (all small and in git): each run's run.json (what it is: family, backbone, representation,
tokenizer, protocol, seed, overrides), its evaluation metrics, its per-user target ranks (and cold-pool
control values), its training facts and curves, each tokenizer's diagnostics and code-usage table,
each protocol's split facts. Nothing here recognises a run by its name: tables group runs by the
attributes in run.json, and every sentence with a number is computed.

The report's unit is a model: the runs that differ only in their seed (models.py `collapse_seeds`).
Its metrics are means over seeds (± sample sd), and its per-user values, recomputed from the stored
ranks, are averaged over seeds before the paired tests. Per protocol, a model is tested on all test
users against the baseline (params `report.baseline`), on the cold-target users against the cold
baseline (`report.cold_baseline`, a model that can reach cold items: an ID model scores 0 there by
construction), and on the targets reachable in each cold pool against the random cold-slot control
(lib/evaluate.py). Holm's correction covers every test of a protocol or of the report
(`report.family`, lib/significance.py).

Modules: config.py (the `report` params), models.py (runs -> models, references, cold pools),
comparisons.py (paired tests, Holm), tables.py (markdown tables), protocol.py (one protocol's section),
effects.py (the protocol-effects section), decoding.py (the decoding benchmark, when given); `render`
here puts them together.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from lib.report.comparisons import correct, protocol_tests
from lib.report.config import Baseline, ReportConfig
from lib.report.decoding import decoding_section
from lib.report.effects import protocol_effects
from lib.report.models import FAMILY_ORDER, Models, ReportInputs, collapse_seeds
from lib.report.protocol import plot_tables, protocol_section
from lib.report.tables import cost_rows, tokenizer_rows

__all__ = ["FAMILY_ORDER", "Baseline", "Models", "Report", "ReportConfig", "ReportInputs", "render"]


@dataclass
class Report:
    markdown: str
    leaderboard: dict  # JSON: per protocol, baselines, models' test metrics (mean, sd, runs), paired tests
    tables: dict[str, pd.DataFrame]  # long tables behind the figures: metrics_vs_k, cold_warm


def render(inp: ReportInputs, cfg: ReportConfig, figures: dict[str, str]) -> Report:
    """The whole RESULTS.md (+ leaderboard JSON, figure tables); `figures` maps name -> markdown image."""
    missing = sorted(set(inp.runs) ^ set(inp.evals) | set(inp.runs) ^ set(inp.per_user))
    if missing:
        raise ValueError(f"runs without all of run.json, eval metrics and per-user ranks: {missing}")
    models = collapse_seeds(inp, sorted({int(m.split("@")[1]) for m in cfg.significance_metrics}))
    by_protocol: dict[str, list[str]] = {}
    for r, info in models.runs.items():
        by_protocol.setdefault(info["protocol"], []).append(r)
    protocols = sorted(by_protocol, key=lambda p: (p != "gts", p))
    comparisons = {p: protocol_tests(by_protocol[p], models, cfg) for p in protocols}
    n_tests = correct(comparisons, cfg)
    out = ["# Results", "",
           "Rendered by the `report` stage from committed files (`results/`, `metrics/`, `plots/`); do not edit by "
           "hand. Never compare figures across protocols: leave-one-out scores the same model about 2-2.5x higher.", ""]
    leaderboard, tables = {}, {"metrics_vs_k": [], "cold_warm": []}
    for p in protocols:
        lines, leaderboard[p] = protocol_section(p, by_protocol[p], models, comparisons[p], n_tests[p],
                                                 inp.splits.get(p, {}), cfg, figures)
        out += lines
        for name, t in plot_tables(by_protocol[p], models, p, cfg).items():
            tables[name].append(t)
    out += [*protocol_effects(by_protocol, models, inp.splits),
            "## Tokenizers: codebook usage and collisions", "",
            "Perplexity = exp(entropy) of a level's code distribution over all items (max = codebook size). "
            "Rel. error = squared error over the embeddings' variance: the RQ-VAE's reconstruction, residual "
            "k-means' quantisation. Ordered by collision rate.", "",
            *tokenizer_rows(inp), "", figures.get("codebook_usage", ""), "",
            "## Training cost", "", *cost_rows(inp), "",
            *(decoding_section(inp.decoding) if inp.decoding is not None else [])]
    markdown = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"  # a missing figure leaves no gap
    return Report(markdown, leaderboard, {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame()
                                          for k, v in tables.items()})
