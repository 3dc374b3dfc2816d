"""The answer sections of RESULTS.md: per question one small table and one sentence computed from it.

Why a section falls back to a superseded scope instead of mixing: a table holds runs of one protocol and
one protocol version. A question is answered under the current protocol (`report.protocol`, current
`protocol_version`) when that scope holds a model of it other than its references; otherwise the section
says it has not been re-run and shows the latest older scope, labelled as such. Rows are the references,
then the other models best on validation first: test figures are read only after the choice.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from lib.report.config import Question, ReportConfig
from lib.report.models import VAL_KEY, Models
from lib.report.scopes import Scope, best_on_validation, by_validation, row_reference
from lib.report.stats import Request, TestBook, claimable, diff_cell, fmt_p, mark, verdict
from lib.report.tables import mean_sd_cell, quoted, ratio, representation, table

ALL_KEY, COLD_KEY = "test/ndcg@10", "cold/hr@10"  # what an answer table tests: all users | knowable cold targets
REGENERATION = "regeneration is issue 32"
NO_REFERENCE = "its reference has not run here"


@dataclass
class Plan:
    """What one question's section shows: its scope, rows and each row's reference."""
    key: str
    question: Question
    scope: Scope | None  # None: no run of the question in any scope
    rows: list[str] = field(default_factory=list)  # references first, then by validation NDCG@10
    refs: dict[str, str | None] = field(default_factory=dict)  # non-reference row -> its reference
    left_out: list[str] = field(default_factory=list)  # beyond `max_rows` (still in the appendix)
    missing: list[str] = field(default_factory=list)  # in no scope shown here: not (re-)run under the current one
    ruled: list[str] = field(default_factory=list)  # rule runs of the question in the scope

    @property
    def test_key(self) -> str:
        return COLD_KEY if self.question.target == "cold" else ALL_KEY

    def requests(self) -> list[Request]:
        return [Request(m, r, self.test_key) for m, r in self.refs.items() if r is not None]


def plan(key: str, q: Question, scopes: dict[Scope, tuple[list[str], list[str]]], models: Models,
         cfg: ReportConfig) -> Plan:
    """Choose the question's scope (current protocol first, then its older versions) and its rows."""
    candidates = [s for s in scopes if s.protocol == cfg.protocol]  # current first (scopes are sorted so)
    chosen = next((s for s in candidates if any(m in scopes[s][0] for m in q.models if m not in q.references)),
                  next((s for s in candidates if s.current and any(m in scopes[s][0] for m in q.models)), None))
    if chosen is None:
        return Plan(key, q, None, missing=list(q.models))
    plain, ruled = scopes[chosen]
    present = [m for m in q.models if m in plain]
    refs = [r for r in q.references if r in present]
    rows = refs + by_validation([m for m in present if m not in refs], models)
    p = Plan(key, q, chosen, rows=rows[:cfg.max_rows], left_out=rows[cfg.max_rows:],
             ruled=[m for m in q.models if m in ruled])
    p.refs = {m: row_reference(m, refs, list(q.references), models) for m in p.rows if m not in refs}
    p.missing = [m for m in q.models if m not in plain and m not in ruled]
    return p


def _all_table(p: Plan, models: Models, book: TestBook, cfg: ReportConfig) -> list[str]:
    several = len({r for r in p.refs.values() if r}) > 1
    rows = []
    for m in p.rows:
        t = book.get(p.scope, m, p.refs[m], ALL_KEY) if m in p.refs else None
        cell = (diff_cell(t) + (f" vs `{p.refs[m]}`" if t and several else "") if p.refs.get(m)
                else NO_REFERENCE)
        rows.append([f"`{m}`", representation(models.runs[m]), models.n_seeds(m), models.evals[m].get(VAL_KEY),
                     mean_sd_cell(*models.mean_sd(m, "test/ndcg@10")), mean_sd_cell(*models.mean_sd(m, "test/hr@10")),
                     models.mean_sd(m, "cold/hr@10")[0], cell if m in p.refs else "reference",
                     fmt_p(t["p_adjusted"]) if t else "–", mark(t, cfg) if m in p.refs else "–"])
    return table(["model", "item representation", "seeds", "val NDCG@10", "test NDCG@10", "test HR@10",
                  "cold HR@10", "Δ test NDCG@10 [95% CI]", "p (adj.)", "mark"], rows)


def cold_slots(models: Models, m: str) -> float | None:
    """Mean number of knowable cold items in the model's top 10 (eval metrics)."""
    pool = models.pool.get(m)
    return models.evals[m].get(f"test/cold_pool/{pool}/cold_slots@10") if pool else None


def _cold_table(p: Plan, models: Models, book: TestBook, cfg: ReportConfig) -> list[str]:
    rows = []
    for m in p.rows:
        t = book.get(p.scope, m, p.refs[m], COLD_KEY) if m in p.refs else None
        cold, control = models.mean_sd(m, "cold/hr@10"), models.mean_sd(m, "control/hr@10")[0]
        rows.append([f"`{m}`", representation(models.runs[m]), models.n_seeds(m), models.evals[m].get(VAL_KEY),
                     mean_sd_cell(*cold), models.mean_sd(m, "cold/ndcg@10")[0], cold_slots(models, m), control,
                     ratio(cold[0], control), ("reference" if m not in p.refs else diff_cell(t) if p.refs[m]
                                               else NO_REFERENCE),
                     fmt_p(t["p_adjusted"]) if t else "–", mark(t, cfg) if m in p.refs else "–"])
    return table(["model", "item representation", "seeds", "val NDCG@10", "cold HR@10", "cold NDCG@10",
                  "cold slots in top 10", "random-slot control HR@10", "lift", "Δ cold HR@10 [95% CI]", "p (adj.)",
                  "mark"], rows)


def _all_sentence(p: Plan, models: Models, book: TestBook, cfg: ReportConfig) -> str:
    """Per reference and family of the rows compared with it: the model best on validation, then its test."""
    groups: dict[tuple[str, str], list[str]] = {}
    order = {r: i for i, r in enumerate(p.rows)}  # references in the table's order, then families as they come
    for m, r in sorted(((m, r) for m, r in p.refs.items() if r is not None), key=lambda x: order[x[1]]):
        groups.setdefault((r, models.runs[m]["family"]), []).append(m)
    clauses, said = [], set()
    for (ref, family), cands in groups.items():
        best = best_on_validation(cands, models)
        t = book.get(p.scope, best, ref, ALL_KEY)
        if t is not None:
            lead = f"against `{ref}`, the best on validation of" if ref not in said else "of"
            said.add(ref)
            clauses.append(f"{lead} `{family}`, `{best}`, scores test NDCG@10 {t['model']:.4f} vs "
                           f"{t['baseline']:.4f} (Δ {diff_cell(t)}): {verdict(t, cfg)}")
    if not clauses and not any(m not in p.refs for m in p.rows):
        return (f"**Answer:** no comparison: its reference(s) {quoted(p.question.references)} have not run under "
                "this scope.")
    if not clauses:
        return "**Answer:** nothing to compare yet: no model of this question beside its reference(s) has run here."
    return "**Answer:** " + "; ".join(clauses) + "."


def lift_text(model: float | None, control: float | None) -> str:
    if not control:
        return "while its random-slot control places no knowable cold item"
    return f"{ratio(model, control)} its random-slot control ({control:.4f})"


def _cold_sentence(p: Plan, models: Models, book: TestBook, cfg: ReportConfig) -> str:
    """The reference's cold-target HR@10 against its control, then every other row's verdict against it (no
    "best" is picked: validation holds almost no knowable cold target to choose on)."""
    refs = [m for m in p.rows if m not in p.refs]
    if not refs:
        return (f"**Answer:** none of the references ({quoted(p.question.references)}) has run here: the table "
                "has no comparison.")
    ref = refs[0]
    cold, control = models.mean_sd(ref, "cold/hr@10")[0], models.mean_sd(ref, "control/hr@10")[0]
    n = int(models.values[ref]["cold"].sum())
    groups: dict[str, list[str]] = {}
    for m, r in p.refs.items():
        t = book.get(p.scope, m, r, COLD_KEY) if r else None
        if t is not None:
            key = (f"exploratory only (unequal or fewer than {cfg.min_claim_seeds} seeds)" if not claimable(t, cfg)
                   else f"significantly {'better' if t['diff'] > 0 else 'worse'}" if t["significant"]
                   else "not significantly different")
            groups.setdefault(key, []).append(m)
    out = (f"**Answer:** the reference `{ref}` reaches cold-target HR@10 {cold or 0:.4f} on {n} knowable cold "
           f"targets, {lift_text(cold, control)}")
    if groups:
        out += "; against it, " + "; ".join(f"{k}: {quoted(v)}" for k, v in groups.items())
    return out + "."


def section(i: int, p: Plan, models: Models, book: TestBook, cfg: ReportConfig) -> list[str]:
    """One question's markdown: heading, scope notes, the table, the computed sentence."""
    out = [f"## {i}. {p.question.title}", ""]
    if p.scope is None:
        return out + [f"Not yet run under any protocol ({REGENERATION}): {quoted(p.missing)}.", ""]
    if not p.scope.current:
        out += [f"**Not yet re-run under the current protocol: {REGENERATION}.** The table shows the "
                f"{p.scope.label}.", ""]
    elif p.missing:
        out += [f"Not yet re-run under the current protocol ({REGENERATION}): {quoted(p.missing)}.", ""]
    cold = p.question.target == "cold"
    out += [p.scope.caption(), "", *(_cold_table if cold else _all_table)(p, models, book, cfg), ""]
    notes = []
    if p.left_out:
        notes.append(f"Beyond the table's {cfg.max_rows} rows (lower on validation; in the appendix): "
                     f"{quoted(p.left_out)}.")
    if p.ruled:
        notes.append(f"Left out: {quoted(p.ruled)} (list rules: an analysis, not a model; appendix).")
    out += [" ".join(notes), ""] if notes else []
    return out + [(_cold_sentence if cold else _all_sentence)(p, models, book, cfg), ""]
