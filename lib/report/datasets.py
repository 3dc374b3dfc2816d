"""Does another dataset agree? Each answer's comparisons and the declared claims, side by side on two datasets.

Read from the two pipelines' leaderboards (metrics/leaderboard.json of each `report` stage), never from their
runs: a comparison on the other dataset is the test that dataset's own report computed (its runs, its `report`
params, its families: Holm over its claims, Benjamini-Hochberg over the rest), so both documents show the same
figures for it, and neither report waits for, locks or re-renders the other. Two tests are the same comparison
only under the same scope (protocol and protocol version) and on the same value (all users' NDCG@10, or knowable
cold targets' HR@10); otherwise the row says why it is not compared.

Agreement is read from the two marks, never from a pooled test: a comparison agrees when both datasets give the
same claimable verdict (both significantly better, both worse, or neither significant), disagrees when they are
significant in opposite directions, and holds only partly when one is significant and the other not. A comparison
exploratory on either side (unequal or fewer than `min_claim_seeds` seeds) only says whether the two differences
point the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.report.config import ReportConfig
from lib.report.stats import claimable, diff_cell, mark
from lib.report.tables import quoted, table

AGREE, AGREE_NS, PARTLY, DISAGREE = "agrees", "agrees (neither significant)", "partly", "disagrees"
SAME_WAY, OTHER_WAY = "same direction (exploratory)", "opposite direction (exploratory)"


@dataclass
class Side:
    """One dataset's answers and tests, as its report's leaderboard holds them."""
    name: str
    board: dict

    def test(self, scope: str | None, model: str, against: str, key: str) -> dict | None:
        for t in self.board["scopes"].get(scope, {}).get("tests", []) if scope else []:
            if (t["model_name"], t["against"], t["key"]) == (model, against, key):
                return t
        return None

    @property
    def headline(self) -> str:
        return self.board["headline_scope"]


def _sign(t: dict) -> int:
    return (t["diff"] > 0) - (t["diff"] < 0)


def agreement(a: dict | None, b: dict | None, names: tuple[str, str], cfg: ReportConfig) -> str | None:
    """The verdict of two tests of one comparison on two datasets (module docstring); None if one is missing."""
    if a is None or b is None:
        return None
    same_sign = _sign(a) == _sign(b)
    if not (claimable(a, cfg) and claimable(b, cfg)):
        return SAME_WAY if same_sign else OTHER_WAY
    if a["significant"] and b["significant"]:
        return AGREE if same_sign else DISAGREE
    if not a["significant"] and not b["significant"]:
        return AGREE_NS
    return f"{PARTLY}: significant on {names[0] if a['significant'] else names[1]} only"


def _brief(t: dict | None) -> dict | None:
    keys = ("diff", "ci_low", "ci_high", "p_adjusted", "significant", "family", "model_seeds", "reference_seeds")
    return None if t is None else {k: t[k] for k in keys}


def _row(m: str, r: str, t: dict | None, ot: dict | None, this: Side, other: Side,
         cfg: ReportConfig) -> tuple[list, dict]:
    v = agreement(t, ot, (this.name, other.name), cfg)
    cells = [f"`{m}`", f"`{r}`", diff_cell(t), mark(t, cfg), diff_cell(ot), mark(ot, cfg), v or "–"]
    return cells, {"model": m, "against": r, "agreement": v, this.name: _brief(t), other.name: _brief(ot)}


def _summary(verdicts: list[str | None], other: str, cfg: ReportConfig, missing: dict[str, list[str]]) -> str:
    """The verdicts counted, and each comparison left out with why."""
    n = {k: sum(1 for v in verdicts if v == k or (k == PARTLY and v is not None and v.startswith(PARTLY)))
         for k in (AGREE, AGREE_NS, PARTLY, DISAGREE, SAME_WAY, OTHER_WAY)}
    claimable, exploratory = n[AGREE] + n[AGREE_NS] + n[PARTLY] + n[DISAGREE], n[SAME_WAY] + n[OTHER_WAY]
    parts = []
    if claimable:
        parts.append(f"of {claimable} claimable comparison{'s' * (claimable != 1)} ({cfg.min_claim_seeds}+ seeds, as "
                     f"many a side), {n[AGREE]} significant the same way on both, {n[AGREE_NS]} significant on "
                     f"neither, {n[PARTLY]} significant on one dataset only, {n[DISAGREE]} significant in opposite "
                     "directions")
    if exploratory:
        parts.append(f"of {exploratory} exploratory one{'s' * (exploratory != 1)}, {n[SAME_WAY]} point the same way "
                     f"and {n[OTHER_WAY]} the opposite way")
    if not parts:
        parts.append("no comparison has a test on both datasets yet")
    parts += [f"{why}: {quoted(names)}" for why, names in missing.items() if names]
    text = "; ".join(parts)
    return text[:1].upper() + text[1:]


def question_section(i: int, key: str, this: Side, other: Side, cfg: ReportConfig) -> tuple[list[str], list[dict]]:
    """One answer of this report: its comparisons beside the other dataset's tests of the same comparisons (the
    same scope and value: found in the other's tests whatever its own answer to the question shows)."""
    q = this.board["questions"][key]
    out = [f"## {i}. {q['title']}", ""]
    if q["scope"] is None:
        return out + [f"Not run on {this.name} yet.", ""], []
    rows, board, verdicts = [], [], []
    missing: dict[str, list[str]] = {f"no test on {other.name} under `{q['scope']}`": [],
                                     f"no test on {this.name} yet": [], "reference not run here": []}
    for m, r in ((m, r) for m, r in q["references"].items()):
        if r is None:
            missing["reference not run here"].append(m)
            continue
        t, ot = this.test(q["scope"], m, r, q["test_key"]), other.test(q["scope"], m, r, q["test_key"])
        if t is None or ot is None:
            missing[f"no test on {this.name} yet" if t is None else f"no test on {other.name} under `{q['scope']}`"]\
                .append(m)
            continue
        cells, entry = _row(m, r, t, ot, this, other, cfg)
        verdicts.append(entry["agreement"])
        rows.append(cells)
        board.append(entry)
    metric = "knowable cold targets' HR@10" if q["test_key"].startswith("cold/") else "test NDCG@10"
    out += [f"Δ {metric} against each row's reference, under `{q['scope']}` on both datasets.", ""]
    if rows:
        out += [*table(["model", "vs", f"Δ on {this.name} [95% CI]", "mark", f"Δ on {other.name} [95% CI]", "mark",
                        "agreement"], rows), ""]
    out += [f"**Does {other.name} agree?** {_summary(verdicts, other.name, cfg, missing)}.", ""]
    return out, board


def claims_section(this: Side, other: Side, cfg: ReportConfig) -> tuple[list[str], list[dict]]:
    """The declared claims (the same pairs in both pipelines: tests/test_datasets.py) on both datasets."""
    metric = cfg.confirmatory_metric
    key = f"test/{metric}"
    rows, board, verdicts = [], [], []
    missing: dict[str, list[str]] = {f"not tested on {this.name} yet": [], f"not tested on {other.name} yet": []}
    for m, r in cfg.confirmatory:
        t, ot = this.test(this.headline, m, r, key), other.test(other.headline, m, r, key)
        cells, entry = _row(m, r, t, ot, this, other, cfg)
        verdicts.append(entry["agreement"])
        rows.append(cells)
        board.append(entry)
        for side_t, name in ((t, this.name), (ot, other.name)):
            if side_t is None:
                missing[f"not tested on {name} yet"].append(m)
    lead = (f"**The claims.** Each dataset's declared claims are its own Holm family (the same pairs, test "
            f"{metric.upper()}, `{this.headline}` here and `{other.headline}` on {other.name}). "
            f"{_summary(verdicts, other.name, cfg, missing)}.")
    return [lead, "", *table(["model", "vs", f"Δ on {this.name} [95% CI]", "mark", f"Δ on {other.name} [95% CI]",
                              "mark", "agreement"], rows), ""], board


def compare(board: dict, other_board: dict, cfg: ReportConfig, link: str | None = None) -> tuple[str, dict]:
    """Two leaderboards -> the markdown "does <other> agree?" per answer of `board`'s report, and its JSON. cfg:
    this pipeline's `report` params (claims, seed rule; the other pipeline's are the same: tests/test_datasets.py)."""
    this, other = Side(board["dataset"], board), Side(other_board["dataset"], other_board)
    if this.name == other.name:
        raise ValueError(f"both leaderboards are of dataset {this.name!r}: params report.dataset must differ")
    out = [f"# Does {other.name} agree with {this.name}?", "",
           f"Rendered by the `compare` stage from the two reports' leaderboards; do not edit by hand. Each table sets "
           f"the tests of one answer of the {this.name} report (reports/RESULTS.md) beside the same tests on "
           f"{other.name}" + (f" ([its report]({link}))" if link else "") + ", each computed by that dataset's "
           "own report (its runs, seeds and test families). Agreement is read from the two marks, never from a "
           "pooled test (lib/report/datasets.py).", ""]
    lines, claims = claims_section(this, other, cfg)
    out += lines
    questions = {}
    for i, key in enumerate(board["questions"], 1):
        lines, questions[key] = question_section(i, key, this, other, cfg)
        out += lines
    return "\n".join(out).rstrip("\n") + "\n", {"dataset": this.name, "other": other.name, "claims": claims,
                                                 "questions": questions}
