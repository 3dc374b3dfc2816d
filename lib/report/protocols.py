"""The protocol parts of RESULTS.md: the opening (why the catalogue is restricted, what each protocol leaves
unreachable) and the last question, what the protocol itself does to the figures.

Why the protocol question is a table of ratios: the same model under two protocols is scored on other users
and other lists, so no paired test exists between them; what a reader can take away is how many times one
protocol's figure is another's, and how far ours sit from published figures of a comparable protocol. Its
rows are each one protocol's own run, all of one protocol version.
"""
from __future__ import annotations

from lib.report.config import ReportConfig
from lib.report.models import Models
from lib.report.scopes import Scope, by_validation, matches, reference_of
from lib.report.stats import TestBook, mark
from lib.report.tables import mean_sd_cell, quoted, ratio, table

FIVE_CORE = (
    "**Why each list's catalogue is the items known at its cut-off.** The data set is 5-core filtered over the "
    "whole timeline, so an item without a training interaction is guaranteed five later ones: the items a "
    "temporal split calls cold are exactly the future hits, many of which did not exist yet when the test period "
    "starts (survivorship). Any rule or model that promotes them gains from that selection, not from what it "
    "learnt. Under the current protocol (issue 29) a list's candidates are the items with an interaction at or "
    "before its cut-off (T_val for validation lists, T_test for test lists); a target outside them is "
    "*unreachable*, a miss for every model, and cold targets are the reachable ones without a training "
    "interaction. Leave-one-out keeps the papers' whole catalogue: its purpose is comparability with them. Every "
    "\"cold\" figure of this report is on knowable cold targets (for pre-#29 runs: items with an interaction at or "
    "before T_test).")


def describe(split: dict) -> str:
    """A protocol in words from its split metrics: type, tie order, refit."""
    if not split:
        return "–"
    if split.get("type") == "leave_one_out":
        out = "leave-one-out"
    else:
        out = "temporal"
    ties = split.get("tie_break")
    if ties == "random":
        out += ", random ties" + (f" (seed {split['tie_seed']})" if "tie_seed" in split else "")
    elif ties:
        out += ", file-order ties"
    return out + (", final refit" if split.get("retrain_on_validation") else "")


def _count(split: dict, prefix: str) -> str:
    n, f = split.get(f"{prefix}_unreachable_targets"), split.get(f"{prefix}_unreachable_target_fraction")
    return "–" if n is None else f"{n} ({f:.1%})" if f is not None else str(n)


def split_table(splits: dict[str, dict], cfg: ReportConfig) -> list[str]:
    """One row per protocol's split metrics; keys a pre-#29 split file lacks are "–"."""
    rows = [[f"`{p}`", describe(s), s.get("catalogue", "– (pre-#29 split)"), s.get("test_users"),
             _count(s, "test"), s.get("test_cold_targets"), _revisits(s), _count(s, "val"), s.get("val_cold_targets")]
            for p, s in sorted(splits.items(), key=lambda kv: (kv[0] != cfg.protocol, kv[0]))]
    return table(["protocol", "split", "catalogue", "test users", "unreachable test targets", "cold test targets",
                  "re-visit test targets", "unreachable val targets", "val cold targets"], rows)


def _revisits(split: dict) -> str:
    """Test targets the user consumed before (seen-item filtering makes them misses for every model)."""
    n, users = split.get("test_repeat_targets"), split.get("test_users")
    return "–" if n is None else f"{n} ({n / users:.1%})" if users else str(n)


REVISIT_KEYS = ("test/ndcg@10", "test/unfiltered/ndcg@10", "test/unfiltered/repeat_target/hr@10",
                "test/unfiltered/new_target/ndcg@10")


def revisit_section(plain: list[str], models: Models, cfg: ReportConfig) -> list[str]:
    """Filtered against unfiltered figures of the headline scope's models, where the evaluation scored both
    (`evaluate.unfiltered`: a dataset with re-visits). Empty otherwise."""
    names = by_validation([m for m in plain if models.evals[m].get("test/unfiltered/ndcg@10") is not None], models)
    if not names:
        return []
    rows = [[f"`{m}`", models.n_seeds(m), *(models.evals[m].get(k) for k in REVISIT_KEYS)]
            for m in names[:cfg.max_rows]]
    n = models.evals[names[0]].get("test/unfiltered/repeat_target/users")
    best = max(names, key=lambda m: models.evals[m].get("test/unfiltered/repeat_target/hr@10") or 0.0)
    hr = models.evals[best].get("test/unfiltered/repeat_target/hr@10") or 0.0
    return ["## Re-visits: seen items filtered or not", "",
            f"Every table above removes each user's seen items from their list (`evaluate.filter_seen`), which makes "
            f"the {n} test targets the user consumed before misses for every model. Scored on the same lists without "
            f"that filter ({cfg.protocol}, test, means over seeds; models best on validation first):", "",
            *table(["model", "seeds", "NDCG@10 filtered", "NDCG@10 unfiltered", "re-visit targets HR@10 (unfiltered)",
                    "new targets NDCG@10 (unfiltered)"], rows), "",
            f"**Answer:** unfiltered, `{best}` hits the most re-visit targets in its top 10 (HR@10 {hr:.4f}). A "
            "generator whose beam search excludes seen items (`gpt2_sid.decode.exclude_seen`) never hits one, and "
            "every model was chosen on filtered validation.", ""]


def opening(splits: dict[str, dict], cfg: ReportConfig) -> list[str]:
    """The 5-core note, the per-protocol split table and a sentence on the headline protocol."""
    s = splits.get(cfg.protocol, {})
    if "test_unreachable_targets" in s:
        line = (f"Under `{cfg.protocol}`, {s['test_unreachable_targets']} of {s.get('test_users', '?')} test targets "
                f"({s.get('test_unreachable_target_fraction', 0):.1%}) are unreachable and "
                f"{s.get('test_cold_targets', '?')} are cold (knowable, no training interaction).")
        young = next((k for k in s if k.startswith("test_cold_targets_under_")), None)
        if young is not None:  # what the restriction leaves of the selection (lib/data/split.py)
            k = young.removeprefix("test_cold_targets_under_").removesuffix("_at_cutoff")
            line += (f" The restriction removes the items that did not exist yet, not the whole selection: "
                     f"{s[young]} of these cold targets (and {s.get(f'test_catalogue_items_under_{k}_at_cutoff', '?')} "
                     f"catalogue items) have fewer than {k} interactions at T_test, so they are in the data only "
                     f"because they reached {k} later, and items that never did are missing as distractors: "
                     f"read cold-target figures as optimistic.")
    else:
        line = (f"The split metrics of `{cfg.protocol}` predate issue 29: no unreachable or knowable cold counts yet "
                "(regeneration is issue 32).")
    return [FIVE_CORE, "", *split_table(splits, cfg), "", line, ""]


def confirmatory_line(scope: Scope, plain: list[str], book: TestBook, cfg: ReportConfig) -> str:
    """The declared claims and their verdicts under the current protocol."""
    if not cfg.confirmatory:
        return "No confirmatory family is declared (`report.confirmatory`): every test is exploratory (BH)."
    key = f"test/{cfg.confirmatory_metric}"
    done = [(m, r, book.get(scope, m, r, key)) for m, r in cfg.confirmatory]
    ran = [f"`{m}` vs `{r}` {mark(t, cfg)}" for m, r, t in done if t is not None]
    waiting = [f"`{m}` vs `{r}`" for m, r, t in done if t is None]
    out = (f"**Claims.** The confirmatory family is declared in params (`report.confirmatory`, test "
           f"{cfg.confirmatory_metric.upper()}, `{cfg.protocol}` under the current protocol) and Holm-adjusted over "
           f"its {len(done)} comparisons (one not run yet counts as p = 1): "
           + ("; ".join(ran) + "." if ran else "none has run yet."))
    if waiting:
        out += (f" Not yet run under the current protocol as models without list rules (regeneration is issue 32): "
                f"{', '.join(waiting)}.")
    return out + (f" Every other test is exploratory (Benjamini-Hochberg within its scope). ✓/✗ = significantly "
                  f"better/worse, given only with the same number of seeds on both sides, at least "
                  f"{cfg.min_claim_seeds}; otherwise a row says \"exploratory (n seeds)\".")


def _published(scope: Scope, info: dict, cfg: ReportConfig) -> dict | None:
    """The first published figure of this scope declared beside a model like `info` (none without `like`)."""
    return next((p for p in cfg.published if scope.name in p["scopes"] and p.get("like") and matches(info, p["like"])),
                None)


def protocol_rows(scopes: dict[Scope, tuple[list[str], list[str]]], models: Models,
                  cfg: ReportConfig) -> tuple[int | None, list[tuple[Scope, str]]]:
    """(version, [(scope, its baseline model)]): the current version when two of its protocols hold a baseline
    model, else the version with the most such protocols; the headline protocol first."""
    found: dict[int, list[tuple[Scope, str]]] = {}
    for s, (plain, _) in scopes.items():
        ref = reference_of(plain, models, cfg.baseline)
        if ref is not None:
            found.setdefault(s.version, []).append((s, ref))
    if not found:
        return None, []
    current = found.get(cfg.protocol_version, [])
    version = cfg.protocol_version if len(current) > 1 else max(found, key=lambda v: (len(found[v]), v))
    return version, sorted(found[version], key=lambda x: (x[0].protocol != cfg.protocol, x[0].protocol))


def protocol_section(i: int, scopes: dict[Scope, tuple[list[str], list[str]]], models: Models,
                     splits: dict[str, dict], cfg: ReportConfig) -> list[str]:
    """The last question: one row per protocol (one version), ratios to the headline protocol, published."""
    out = [f"## {i}. What does the protocol do, and how do our figures compare with published ones?", ""]
    version, rows = protocol_rows(scopes, models, cfg)
    if not rows:
        return out + [f"No protocol holds a {cfg.baseline.backbone} {cfg.baseline.representation} model.", ""]
    scope0 = rows[0][0]
    if not scope0.current:
        out += [f"**Not yet re-run under the current protocol: regeneration is issue 32.** The table shows the "
                f"{scope0.label}.", ""]
    anchor_scope, anchor = rows[0]
    a_mean = models.mean_sd(anchor, "test/ndcg@10")[0]
    body, pubs = [], []
    for s, m in rows:
        nd, hr = models.mean_sd(m, "test/ndcg@10"), models.mean_sd(m, "test/hr@10")
        p = _published(s, models.runs[m], cfg)
        pub = "–" if p is None else f"{p.get('ndcg@10', '–')} / {p.get('hr@10', '–')} ({p['model']}; {p['source']})"
        body.append([f"`{s.protocol}`", describe(splits.get(s.protocol, {})) if s.current else "(pre-#29 definition)",
                     f"`{m}`", models.n_seeds(m), mean_sd_cell(*nd), mean_sd_cell(*hr), ratio(nd[0], a_mean), pub,
                     ratio(nd[0], p.get("ndcg@10")) if p else "–"])
        if p is not None and isinstance(p.get("ndcg@10"), (int, float)):
            pubs.append(f"`{m}` under `{s.protocol}` scores {ratio(nd[0], p['ndcg@10'])} the NDCG@10 of {p['model']} "
                        f"({p['source']})")
    label = "the current protocol (#29)" if scope0.current else scope0.label
    out += [f"*One row per protocol, each its own split and users, all of {label}: compare rows only as ratios.*", "",
            *table(["protocol", "split", "model", "seeds", "test NDCG@10", "test HR@10",
                    f"× `{anchor_scope.protocol}` NDCG@10", "published NDCG@10 / HR@10 (same protocol)",
                    "ours / published NDCG@10"], body), ""]
    others = [f"`{s.protocol}` {ratio(models.mean_sd(m, 'test/ndcg@10')[0], a_mean)}" for s, m in rows[1:]]
    answer = f"**Answer:** against `{anchor_scope.protocol}` (`{anchor}`, test NDCG@10 {a_mean:.4f})"
    answer += (": " + ", ".join(others)) if others else ": no other protocol has this model yet"
    answer += ("; " + "; ".join(pubs)) if pubs else "; no published figure of a comparable protocol is declared"
    superseded = sorted({s.name for s in scopes if s.version != version})
    note = [f"Protocols of other versions are in their appendices: {quoted(superseded)}.", ""] if superseded else []
    return out + [answer + ".", "", *note]
