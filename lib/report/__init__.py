"""reports/RESULTS.md and reports/protocols/<scope>.md, rendered from committed per-run files only.

RESULTS.md answers the study's questions (params `report.questions`), one short section each with one
small table and one sentence computed from it, then what the protocol itself does; the appendices hold
every model of each scope (one protocol under one protocol version). Why this shape (issue 29): a reader
must see the answer, and every number in it must survive review: no table mixes protocols or protocol
versions (lib/report/scopes.py), no rule that injects items enters a table as a model, a ✓/✗ claim needs
equal seeds (at least `min_claim_seeds`) and only the declared confirmatory family is Holm-adjusted
(lib/report/stats.py), and every choice of a "best" model is made on validation.

Modules: config (the `report` params), models (runs -> models over seeds, per-user values), scopes
(protocol versions, rule runs, references), stats (tests, families, marks), questions (answer sections),
protocols (the opening and the protocol question), appendix + details (the per-scope files), decoding,
tables (cell formats).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lib.report.appendix import appendix, figure_models, requests
from lib.report.config import Baseline, Question, ReportConfig
from lib.report.decoding import decoding_section
from lib.report.models import Models, ReportInputs, collapse_seeds
from lib.report.protocols import confirmatory_line, opening, protocol_section, revisit_section
from lib.report.questions import Plan, plan, section
from lib.report.scopes import Scope, best_on_validation, by_scope, rules_of
from lib.report.stats import Request, TestBook, run_tests

__all__ = ["Baseline", "Models", "Question", "Report", "ReportConfig", "ReportInputs", "render"]


@dataclass
class Report:
    markdown: str  # RESULTS.md
    appendices: dict[str, str]  # scope name -> reports/protocols/<name>.md
    leaderboard: dict  # JSON: per scope its models (means, sd, runs), tests and rule runs; per question its rows
    figures: dict[str, tuple[str, Any]]  # figure name -> (kind, data) for lib/plots.py


def _tidy(lines: list[str]) -> str:
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n") + "\n"


def at_k(names: list[str], models: Models) -> pd.DataFrame:
    """(model, k, metric, value): test NDCG@K and HR@K, means over seeds, for the figures."""
    rows = [(m, int(k.split("@")[1]), k.split("/")[1].split("@")[0], v) for m in names
            for k, v in models.evals[m].items() if re.fullmatch(r"test/(ndcg|hr)@\d+", k)]
    return pd.DataFrame(rows, columns=["model", "k", "metric", "value"])


def cold_warm(names: list[str], models: Models) -> pd.DataFrame:
    """(model, slice, value): HR@10 on all test users, warm targets and knowable cold targets."""
    rows = [(m, s, v) for m in names for s, v in (("all", models.mean_sd(m, "test/hr@10")[0]),
                                                  ("warm targets", models.evals[m].get("test/warm_target/hr@10")),
                                                  ("knowable cold targets", models.mean_sd(m, "cold/hr@10")[0]))]
    return pd.DataFrame(rows, columns=["model", "slice", "value"])


def scope_figures(scope: Scope, plain: list[str], inp: ReportInputs, models: Models,
                  cfg: ReportConfig) -> dict[str, tuple[str, Any]]:
    """kind -> (figure name, data) of one scope's appendix; at most 8 series each (appendix.figure_models)."""
    picks = figure_models(plain, models, cfg)
    if not picks:
        return {}
    out = {"at_k": (f"at_k_{scope.name}", at_k(picks, models)),
           "cold_warm": (f"cold_warm_{scope.name}", cold_warm(figure_models(plain, models, cfg, cold=True), models))}
    curves = {m: inp.curves[m] for m in picks if m in inp.curves}
    if curves:
        out["curves"] = (f"val_curves_{scope.name}", curves)
    usage = {t: inp.code_usage[t] for t in sorted({models.runs[m].get("tokenizer") for m in plain} - {None})
             if t in inp.code_usage}
    if usage:
        out["codebook"] = (f"codebook_usage_{scope.name}", dict(list(usage.items())[:8]))
    return out


def answers_figure(plans: list[Plan], models: Models) -> tuple[str, pd.DataFrame] | None:
    """NDCG/HR@K of the references and of each reference's best-on-validation model, in the first scope the
    answers use (one scope: a figure does not mix them either); at most 8 series."""
    scoped = [p for p in plans if p.scope is not None]
    if not scoped:
        return None
    scope = scoped[0].scope
    picks: list[str] = []
    for p in (p for p in scoped if p.scope == scope):
        for ref in dict.fromkeys(r for r in p.refs.values() if r):
            cands = [m for m, r in p.refs.items() if r == ref]
            picks += [x for x in (ref, best_on_validation(cands, models)) if x not in picks]
    return (f"answers_{scope.name}", at_k(picks[:8], models)) if picks else None


@dataclass
class _Analysis:
    """One dataset's models, scopes, question plans and tests: what its report shows."""
    models: Models
    scopes: dict[Scope, tuple[list[str], list[str]]]
    headline: Scope
    plans: list[Plan]
    book: TestBook


def _analyse(inp: ReportInputs, cfg: ReportConfig) -> _Analysis:
    """Runs -> models over seeds -> each question's plan -> every test the report shows, in its families."""
    missing = sorted(set(inp.runs) ^ set(inp.evals) | set(inp.runs) ^ set(inp.per_user))
    if missing:
        raise ValueError(f"runs without all of run.json, eval metrics and per-user ranks: {missing}")
    metrics = sorted({*cfg.significance_metrics, cfg.confirmatory_metric, "ndcg@10", "hr@10"})
    models = collapse_seeds(inp, metrics)
    scopes = by_scope(models, cfg.protocol_version)
    headline = Scope(cfg.protocol, cfg.protocol_version, True)
    plans = [plan(k, q, scopes, models, cfg) for k, q in cfg.questions.items()]
    plain_head = scopes.get(headline, ([], []))[0]
    confirm = [Request(m, r, f"test/{cfg.confirmatory_metric}") for m, r in cfg.confirmatory
               if m in plain_head and r in plain_head]
    asked: dict[Scope, list[Request]] = {s: [] for s in scopes}
    asked.setdefault(headline, []).extend(confirm)
    for p in plans:
        if p.scope is not None:
            asked[p.scope] += p.requests()
    for s, (plain, _) in scopes.items():
        asked[s] += requests(plain, models, cfg)
    return _Analysis(models, scopes, headline, plans, run_tests(asked, {headline: set(confirm)}, models, cfg))


def render(inp: ReportInputs, cfg: ReportConfig, links: tuple[str, str] = ("figures", "../figures")) -> Report:
    """The whole report. links: the figures directory relative to RESULTS.md and to the appendices."""
    a = _analyse(inp, cfg)
    models, scopes, headline, plans, book = a.models, a.scopes, a.headline, a.plans, a.book
    plain_head = scopes.get(headline, ([], []))[0]
    figures: dict[str, tuple[str, Any]] = {}
    out = [f"# Results: {cfg.dataset}", "",
           "Rendered by the `report` stage from committed files (`results/`, `metrics/`, `plots/`); do not edit by "
           "hand. Each table holds runs of one protocol under one protocol version; full leaderboards, every paired "
           "test and per-protocol details are in the appendices listed at the end.", "",
           *opening(inp.splits, cfg), confirmatory_line(headline, plain_head, book, cfg), ""]
    for i, p in enumerate(plans, 1):
        out += section(i, p, models, book, cfg)
    fig = answers_figure(plans, models)
    if fig:
        figures[fig[0]] = ("at_k", fig[1])
        out += [f"NDCG@K and HR@K of the references and of each one's model chosen on validation (test; "
                f"{fig[0].removeprefix('answers_')}):", "", f"![{fig[0]}]({links[0]}/{fig[0]}.png)", ""]
    out += protocol_section(len(plans) + 1, scopes, models, inp.splits, cfg)
    out += revisit_section(plain_head, models, cfg)
    appendices, board = {}, {"dataset": cfg.dataset, "protocol": cfg.protocol, "protocol_version": cfg.protocol_version,
                             "headline_scope": headline.name, "min_claim_seeds": cfg.min_claim_seeds, "scopes": {},
                             "questions": {p.key: {"title": p.question.title, "test_key": p.test_key,
                                                   "scope": p.scope.name if p.scope else None, "rows": p.rows,
                                                   "references": p.refs} for p in plans}}
    decoding_run = (inp.decoding or {}).get("run")
    for s, (plain, ruled) in scopes.items():
        figs = scope_figures(s, plain, inp, models, cfg)
        figures |= {name: (kind, data) for kind, (name, data) in figs.items()}
        text = appendix(s, plain, ruled, inp, models, book, cfg, {k: v[0] for k, v in figs.items()}, links[1])
        if decoding_run in plain + ruled:
            text += "\n" + "\n".join(decoding_section(inp.decoding))
        appendices[s.name] = _tidy([text])
        board["scopes"][s.name] = {
            "protocol": s.protocol, "protocol_version": s.version, "current": s.current, "label": s.label,
            "models": {m: {"runs": models.members[m], "seeds": models.seeds[m],
                           "val/ndcg@10": models.evals[m].get("val/ndcg@10"),
                           **{k: models.mean_sd(m, k)[0] for k in ("test/ndcg@10", "test/hr@10", "cold/hr@10")},
                           **({"sd": {k: models.mean_sd(m, k)[1] for k in ("test/ndcg@10", "test/hr@10")}}
                              if models.n_seeds(m) > 1 else {})} for m in plain},
            "rule_runs": {m: rules_of(models.runs[m], models.train.get(m)) for m in ruled},
            "tests": book.of(s)}
    out += ["## Appendices", ""]
    for s, (plain, ruled) in scopes.items():
        out.append(f"- [{s.name}](protocols/{s.name}.md): protocol `{s.protocol}`, {s.label}; {len(plain)} "
                   f"model{'s' * (len(plain) != 1)}" + (f", {len(ruled)} rule run{'s' * (len(ruled) != 1)}" if ruled
                                                        else ""))
    return Report(_tidy(out), appendices, board, figures)
