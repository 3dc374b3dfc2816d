"""Does the other dataset agree? Each answer's comparisons and the declared claims, side by side on two datasets.

Why the other dataset's own analysis: a comparison is the same test on another dataset only if everything
around it is the same, so the other pipeline's tests are those its own report computes (its runs, its
`report` params, its families: Holm over its claims, Benjamini-Hochberg over the rest), and the two reports
show the same figures for it. Agreement is then read from the two marks, never from a pooled test: a comparison
agrees when both datasets give the same claimable verdict (both significantly better, both worse, or neither
significant), disagrees when they are significant in opposite directions, and holds only partly when one is
significant and the other not. A comparison that is exploratory on either side (unequal or fewer than
`min_claim_seeds` seeds) only says whether the two differences point the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.report.config import ReportConfig
from lib.report.questions import Plan
from lib.report.scopes import Scope
from lib.report.stats import TestBook, claimable, diff_cell, mark
from lib.report.tables import quoted, table

AGREE, PARTLY, DISAGREE, SAME_WAY, OTHER_WAY = ("agrees", "partly", "disagrees", "same direction (exploratory)",
                                                "opposite direction (exploratory)")


@dataclass
class Side:
    """One dataset's analysis, as the report of that dataset computes it."""
    name: str  # the dataset (params report.dataset)
    cfg: ReportConfig
    plans: dict[str, Plan]  # question key -> its plan
    book: TestBook
    headline: Scope


def agreement(a: dict | None, b: dict | None, names: tuple[str, str], cfg: ReportConfig) -> str | None:
    """The verdict of two tests of one comparison on two datasets (module docstring); None if one is missing."""
    if a is None or b is None:
        return None
    same_sign = (a["diff"] > 0) == (b["diff"] > 0)
    if not (claimable(a, cfg) and claimable(b, cfg)):
        return SAME_WAY if same_sign else OTHER_WAY
    if a["significant"] and b["significant"]:
        return AGREE if same_sign else DISAGREE
    if not a["significant"] and not b["significant"]:
        return AGREE
    return f"{PARTLY}: significant on {names[0] if a['significant'] else names[1]} only"


def _summary(verdicts: list[str | None], other: str, missing: list[str]) -> str:
    counts = {k: sum(1 for v in verdicts if v is not None and v.startswith(k))
              for k in (AGREE, PARTLY, DISAGREE, SAME_WAY, OTHER_WAY)}
    both = sum(counts.values())
    if not both:
        text = f"no comparison of this table has run on {other} yet"
    else:
        text = (f"of the {both} comparison{'s' * (both != 1)} run on both datasets, {counts[AGREE]} agree, "
                f"{counts[PARTLY]} hold on one dataset only and {counts[DISAGREE]} disagree (claimable: 3 seeds a "
                f"side); exploratory ones point the same way {counts[SAME_WAY]} time{'s' * (counts[SAME_WAY] != 1)} "
                f"and the opposite way {counts[OTHER_WAY]} time{'s' * (counts[OTHER_WAY] != 1)}")
    if missing:
        text += f"; not run on {other}: {quoted(missing)}"
    return text


def question_block(key: str, this: Side, other: Side, link: str | None) -> tuple[list[str], list[dict]]:
    """Markdown lines and leaderboard rows: the question's comparisons on this dataset beside the other's."""
    p, op = this.plans[key], other.plans.get(key)
    title = f"**Does {other.name} agree?**" + (f" ([its report]({link}))" if link else "")
    if p.scope is None:
        return [], []
    if op is None or op.scope is None:
        return [f"{title} Not asked or not run on {other.name} yet.", ""], []
    rows, board, verdicts, missing = [], [], [], []
    for m, r in ((m, r) for m, r in p.refs.items() if r is not None):
        t = this.book.get(p.scope, m, r, p.test_key)
        ot = other.book.get(op.scope, m, r, op.test_key) if op.refs.get(m) == r else None
        if ot is None:
            missing.append(m)
            continue
        v = agreement(t, ot, (this.name, other.name), this.cfg)
        verdicts.append(v)
        rows.append([f"`{m}`", f"`{r}`", diff_cell(t), mark(t, this.cfg), diff_cell(ot), mark(ot, other.cfg), v or "–"])
        board.append({"model": m, "against": r, "key": p.test_key, "agreement": v,
                      this.name: _brief(t), other.name: _brief(ot)})
    metric = "cold HR@10" if p.question.target == "cold" else "test NDCG@10"
    out = [f"{title} {_summary(verdicts, other.name, missing).capitalize()}.", ""]
    if rows:
        out += [*table(["model", "vs", f"Δ {metric} on {this.name} [95% CI]", "mark",
                        f"Δ {metric} on {other.name} [95% CI]", "mark", "agreement"], rows), ""]
    return out, board


def claims_block(this: Side, other: Side) -> tuple[list[str], list[dict]]:
    """The declared claims (`report.confirmatory`, the same pairs in both pipelines) on both datasets."""
    key = f"test/{this.cfg.confirmatory_metric}"
    rows, board, verdicts = [], [], []
    for m, r in this.cfg.confirmatory:
        t, ot = this.book.get(this.headline, m, r, key), other.book.get(other.headline, m, r, key)
        v = agreement(t, ot, (this.name, other.name), this.cfg)
        verdicts.append(v)
        rows.append([f"`{m}`", f"`{r}`", diff_cell(t), mark(t, this.cfg), diff_cell(ot), mark(ot, other.cfg), v or "–"])
        board.append({"model": m, "against": r, "key": key, "agreement": v,
                      this.name: _brief(t), other.name: _brief(ot)})
    if not rows:
        return [], []
    lead = (f"**The claims on {other.name}.** Each dataset's claims are its own Holm family (the same declared "
            f"pairs); {_summary(verdicts, other.name, [])}.")
    return [lead, "", *table(["model", "vs", f"Δ {this.cfg.confirmatory_metric.upper()} on {this.name}", "mark",
                              f"Δ on {other.name}", "mark", "agreement"], rows), ""], board


def _brief(t: dict | None) -> dict | None:
    if t is None:
        return None
    return {k: t[k] for k in ("diff", "ci_low", "ci_high", "p_adjusted", "significant", "family", "model_seeds",
                              "reference_seeds")}
