"""One appendix per scope (reports/protocols/<scope>.md): the full leaderboard, every paired test, slices,
the cold-start control, and the details (lib/report/details.py) that used to repeat four times in RESULTS.md.

Why a file per scope: a scope's runs share a split and a catalogue, so its tables can be read together;
runs of another protocol or version never share a table with them. Rule runs appear only in the closing
note on analyses with list rules (lib/report/scopes.py).
"""
from __future__ import annotations

from lib.report.config import ReportConfig
from lib.report.details import content_rows, cost_rows, generator_rows, published_rows, rule_notes, tokenizer_rows
from lib.report.models import VAL_KEY, Models, ReportInputs
from lib.report.protocols import describe
from lib.report.questions import cold_slots
from lib.report.scopes import Scope, by_validation, reference_of
from lib.report.stats import Request, TestBook, diff_cell, fmt_p, mark
from lib.report.tables import fmt, mean_sd_cell, ratio, representation, table

FAMILY_ORDER = ("rankers", "content_rankers", "code_rankers", "generators", "parallel_generators")
SLICES = ("warm_target", "cold_target", "unreachable_target", "cold_user", "warm_user")


def ordered(names: list[str], models: Models) -> list[str]:
    """Grouped by family (FAMILY_ORDER), best validation NDCG@10 first within a family."""
    fam = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(by_validation(names, models), key=lambda r: fam.get(models.runs[r]["family"], len(fam)))


def requests(plain: list[str], models: Models, cfg: ReportConfig) -> list[Request]:
    """The appendix's tests: every model vs the scope's baseline on each significance metric (all test users),
    and the exact test of each one-seed model placing knowable cold items against its random-slot control."""
    base = reference_of(plain, models, cfg.baseline)
    out = [Request(m, base, f"test/{k}") for m in ordered(plain, models) if m != base and base
           for k in cfg.significance_metrics]
    return out + [Request(m, "control", "cold/hr@10") for m in ordered(plain, models)
                  if (cold_slots(models, m) or 0) > 0 and models.n_seeds(m) == 1]


def seed_note(names: list[str], models: Models) -> str:
    multi = [f"`{r}` = " + " + ".join(f"`{m}` (seed {s})" for m, s in zip(models.members[r], models.seeds[r],
                                                                              strict=True))
             for r in sorted(names) if models.n_seeds(r) > 1]
    if not multi:
        return f"{len(names)} models, one seed each: every figure is a single run."
    return (f"{len(names)} models; figures are means ± sample sd over seeds, tests use per-user values averaged over "
            f"seeds. Several seeds: " + "; ".join(multi) + ".")


def leaderboard(names: list[str], scope: Scope, models: Models, book: TestBook, cfg: ReportConfig) -> list[str]:
    base = reference_of(names, models, cfg.baseline)
    key = f"test/{cfg.significance_metrics[0]}"
    rows = []
    for m in ordered(names, models):
        ev, t = models.evals[m], book.get(scope, m, base, key) if base else None
        rows.append([f"`{m}`", models.runs[m]["family"], representation(models.runs[m]), models.n_seeds(m),
                     ev.get(VAL_KEY), mean_sd_cell(*models.mean_sd(m, "test/ndcg@10")),
                     mean_sd_cell(*models.mean_sd(m, "test/hr@10")), ev.get("test/ndcg@50"), ev.get("test/hr@100"),
                     ev.get("test/warm_target/ndcg@10"), models.mean_sd(m, "cold/hr@10")[0],
                     "reference" if m == base else diff_cell(t), fmt_p(t["p_adjusted"]) if t else "–",
                     mark(t, cfg) if m != base else "–"])
    return table(["model", "family", "item representation", "seeds", "val NDCG@10", "test NDCG@10", "test HR@10",
                  "NDCG@50", "HR@100", "warm NDCG@10", "cold HR@10",
                  f"Δ {cfg.significance_metrics[0].upper()} vs `{base}` [95% CI]", "p (adj.)", "mark"], rows)


def test_rows(scope: Scope, book: TestBook, cfg: ReportConfig) -> list[str]:
    rows = [[f"`{t['model_name']}`", f"`{t['against']}`" if t["against"] != "control" else "random-slot control",
             t["key"], t["users"], t["baseline"], t["model"], diff_cell(t), t.get("test", "paired t"),
             fmt_p(t["p_value"]), fmt_p(t["p_adjusted"]), t["family"],
             mark(t, cfg) if t["against"] != "control" else ("yes" if t["significant"] else "no")]
            for t in book.of(scope)]
    if not rows:
        return ["No paired test in this scope."]
    return table(["model", "against", "values", "users", "against's mean", "model's mean", "Δ [95% CI]", "test", "p",
                  "p (adj.)", "family", "mark / significant"], rows)


def slice_rows(names: list[str], models: Models) -> list[str]:
    first = models.evals[names[0]]
    keys = [s for s in SLICES if f"test/{s}/ndcg@10" in first]
    keys += sorted((k.split("/")[1] for k in first if k.startswith("test/len_") and k.endswith("/ndcg@10")),
                   key=lambda s: int(s[4:].split("-")[0].rstrip("+")))
    rows = [[f"`{m}`", models.evals[m].get("test/ndcg@10")] + [models.evals[m].get(f"test/{s}/ndcg@10") for s in keys]
            for m in ordered(names, models)]
    users = [first.get("test/users")] + [first.get(f"test/{s}/users") for s in keys]
    return table(["model (test NDCG@10)", *(f"{s} ({fmt(u)} users)" for s, u in zip(["all", *keys], users,
                                                                                   strict=True))], rows)


def control_rows(names: list[str], scope: Scope, models: Models, book: TestBook) -> list[str]:
    placing = [m for m in ordered(names, models) if (cold_slots(models, m) or 0) > 0]
    if not placing:
        return ["No model places a knowable cold item in its top 10: no control comparison."]
    rows = []
    for m in placing:
        cold, control = models.mean_sd(m, "cold/hr@10")[0], models.mean_sd(m, "control/hr@10")[0]
        t = book.get(scope, m, "control", "cold/hr@10")
        rows.append([f"`{m}`", models.n_seeds(m), cold_slots(models, m), int(models.values[m]["cold"].sum()), cold,
                     control, ratio(cold, control), fmt_p(t["p_adjusted"]) if t else "– (several seeds)"])
    return table(["model", "seeds", "cold slots in top 10", "knowable cold targets", "HR@10", "control HR@10",
                  "lift", "exact test p (BH)"], rows)


def figure(name: str, link: str) -> str:
    return f"![{name}]({link}/{name}.png)"


def appendix(scope: Scope, plain: list[str], ruled: list[str], inp: ReportInputs, models: Models, book: TestBook,
             cfg: ReportConfig, figures: dict[str, str], link: str) -> str:
    """The markdown of one scope's appendix; `figures` maps figure kind -> name of this scope's figures."""
    split = inp.splits.get(scope.protocol, {}) if scope.current else {}
    out = [f"# Protocol `{scope.protocol}`: {scope.label}", "",
           "Appendix of [RESULTS.md](../RESULTS.md): every model of this scope (rule runs only in the last section). "
           + (f"Split: {describe(split)}, catalogue {split.get('catalogue', '?')}. " if split else "")
           + seed_note(plain, models), ""]
    if plain:
        out += ["## Leaderboard (test)", "",
                "Grouped by family, best validation NDCG@10 first within a family (test figures never order rows). "
                "cold HR@10 = knowable cold targets. Marks as in RESULTS.md; every test here is exploratory (BH) "
                "unless it belongs to the declared confirmatory family.", "", scope.caption(), "",
                *leaderboard(plain, scope, models, book, cfg), ""]
        out += [figure(figures[k], link) for k in ("at_k", "cold_warm") if k in figures] + [""]
        out += ["## Paired tests", "", scope.caption(), "", *test_rows(scope, book, cfg), "",
                "## Slices (test NDCG@10)", "", scope.caption(), "", *slice_rows(plain, models), "",
                "## Cold-start control (knowable cold pool)", "",
                "A list's cold slots reach cold targets by chance alone: the control fills the same slots with random "
                "items of the knowable cold pool (exact expectation). The exact test needs 0/1 hits: one-seed models "
                "only.", "", scope.caption(), "", *control_rows(plain, scope, models, book), ""]
        for title, rows in (("Content representations", content_rows(plain, models)),
                            ("Semantic-ID generators: prefix hit rates (test)", generator_rows(plain, models)),
                            ("Tokenizers of this scope's models", tokenizer_rows(plain, models, inp.tokenizers)),
                            ("Against published figures", published_rows(scope, plain, models, cfg)),
                            ("Training cost", cost_rows(plain, models, inp.train))):
            if rows:
                out += [f"## {title}", "", *([] if rows[0].startswith("Per level") else [scope.caption(), ""]),
                        *rows, ""]
        out += [figure(figures[k], link) for k in ("codebook", "curves") if k in figures] + [""]
    if ruled:
        out += ["## Analyses with list rules", "",
                "Runs whose lists were edited by a rule that injects items: not models, never in a leaderboard or "
                "an answer; figures for reference only.", "", *rule_notes(ruled, models), ""]
    return "\n".join(out)


def figure_models(plain: list[str], models: Models, cfg: ReportConfig, cold: bool = False, limit: int = 8
                  ) -> list[str]:
    """At most `limit` series for a scope's figures: its baseline, then each family's best on validation; with
    `cold`, then the two models whose lists hold the most knowable cold items (what the lists are, not a score:
    without them a cold panel is empty)."""
    base = reference_of(plain, models, cfg.baseline)
    picks = [base] if base else []
    for fam in FAMILY_ORDER:
        members = [m for m in plain if models.runs[m]["family"] == fam and m not in picks]
        if members:
            picks.append(by_validation(members, models)[0])
    if cold:
        placing = sorted((m for m in plain if (cold_slots(models, m) or 0) > 0 and m not in picks),
                         key=lambda m: (-cold_slots(models, m), m))
        picks = picks[:limit - min(2, len(placing))] + placing[:2]
    return picks[:limit]
