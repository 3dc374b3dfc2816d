"""One protocol's section of the report: computed sentences around its tables, and the long tables
behind its figures."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lib.metrics import METRICS
from lib.report.config import ReportConfig
from lib.report.models import COLD, KEY, POOLS, WIDEST_POOL, Models, ordered, placing_cold, pools_of, reference_of
from lib.report.tables import (
    comparison_rows,
    content_rows,
    control_table,
    generator_grid,
    generator_rows,
    metric_table,
    published_rows,
    quoted,
    rel_change,
    representation_grid,
)

PROTOCOL_NAMES = {"global_temporal": "global temporal split (Time to Split)",
                  "leave_one_out": "leave-one-out (last item test, second-to-last validation)"}


def summary(names: list[str], base: str | None, models: Models, comp: dict) -> list[str]:
    """Computed sentences: the best model chosen on validation (reported on test), best on cold targets."""
    ev = models.evals
    pick = max(names, key=lambda r: ev[r].get("val/ndcg@10", -1.0))
    line = (f"- **Chosen on validation NDCG@10: `{pick}`** (val {ev[pick]['val/ndcg@10']:.4f}); test NDCG@10 "
            f"{ev[pick][KEY]:.4f}, HR@10 {ev[pick]['test/hr@10']:.4f}")
    if base and pick != base:
        t = comp.get(pick, {}).get(KEY)
        line += f"; baseline `{base}` {ev[base][KEY]:.4f} ({rel_change(ev[pick][KEY], ev[base][KEY])}"
        line += (f", {'significant' if t['significant'] else 'not significant'} after Holm: p = {t['p_holm']:.2g})"
                 if t else ")")
    out = [line + "."]
    top = max(names, key=lambda r: ev[r][KEY])
    if top != pick:
        out.append(f"- Highest test NDCG@10 (not a selection: test is not used to choose): `{top}` {ev[top][KEY]:.4f}.")
    with_cold = [r for r in names if ev[r].get(COLD, 0) > 0]
    if with_cold:
        bc = max(with_cold, key=lambda r: ev[r][COLD])
        out.append(f"- Highest cold-target HR@10 ({ev[bc].get('test/cold_target/users', '?')} test targets without a "
                   f"training interaction): `{bc}` {ev[bc][COLD]:.4f}.")
    no_cold = [r for r in names if ev[r].get(COLD, 0) == 0 and "test/cold_target/users" in ev[r]]
    if no_cold and ev[names[0]].get("test/cold_target/users"):
        out.append(f"- {len(no_cold)} of {len(names)} models put no cold target in any top 10: "
                   + quoted(sorted(no_cold)) + ".")
    return out


def seed_note(names: list[str], models: Models) -> str:
    """The protocol's seed counts, honestly: one seed each, or which models average several."""
    multi = [r for r in sorted(names) if models.n_seeds(r) > 1]
    seeds = sorted({s for r in names for s in models.seeds.get(r, [])}, key=str)
    if not multi:
        return (f"{len(names)} models, one seed each (seed {', '.join(map(str, seeds))}): every figure below is a "
                f"single run.")
    counts = sorted({models.n_seeds(r) for r in multi})
    return (f"{len(names)} models from {sum(models.n_seeds(r) for r in names)} runs: {len(multi)} with "
            f"{'/'.join(map(str, counts))} seeds (figures are means ± sample sd over seeds; their paired tests use "
            f"per-user values averaged over seeds), the other {len(names) - len(multi)} one seed each.")


def members_note(names: list[str], models: Models) -> str:
    """Footnote: the runs behind each model with several seeds."""
    multi = [r for r in sorted(names) if models.n_seeds(r) > 1]
    return "; ".join(f"`{r}` = mean of " + ", ".join(f"`{m}` (seed {s})" for m, s in
                                                     zip(models.members[r], models.seeds[r], strict=True))
                     for r in multi)


def control_sentence(pool: str, names: list[str], comp: dict, cfg: ReportConfig) -> str:
    """Which models are significantly above (or below) their random cold-slot control on `pool`."""
    def verdict(sign: int) -> list[str]:
        out = []
        for r in names:
            hits = [m.upper() for m in cfg.significance_metrics
                    if (t := comp.get(r, {}).get(f"test/cold_pool/{pool}/{m}")) and t["significant"]
                    and np.sign(t["diff"]) == sign]
            if hits:
                out.append(f"`{r}` ({', '.join(hits)})")
        return out
    above, below = verdict(1), verdict(-1)
    text = (f"Significantly above their control on pool `{pool}`: {', '.join(above)}" if above
            else f"No model is significantly above its control on pool `{pool}`")
    return text + (f"; significantly below: {', '.join(below)}." if below else ".")


def control_section(names: list[str], models: Models, comp: dict, cfg: ReportConfig) -> list[str]:
    """The cold-start control of one protocol: per cold pool, models vs the random cold-slot control."""
    pools = pools_of(names, models)
    if not pools:
        return ["No cold-pool metrics in this protocol's evaluations: no control comparison."]
    out = ["A list's cold slots (ranks holding an item of a cold pool) reach cold targets by chance alone. The "
           "control keeps each list's cold slots and fills them with random pool items the user has not seen; "
           "its expected HR/NDCG (exact, not sampled) is what the slots reach by chance, and lift = model / "
           "control on the test targets reachable in the pool. † on HR: the model's hits lie outside the control's "
           "exact Poisson-binomial (Holm-adjusted, one-seed models only); NDCG's lift is not tested. Pools: "
           + "; ".join(f"`{p}` = {POOLS.get(p, 'as the evaluator defines it')}" for p in pools) + ".", ""]
    placing = placing_cold(names, models, cfg)
    if not placing:
        return out + [f"No model places an item of pool `{WIDEST_POOL}` in its top "
                      f"{cfg.significance_metrics[0].split('@')[1]}: no control comparison."]
    left_out = [r for r in names if r not in placing]
    shifted = [r for r in placing if models.train.get(r, {}).get("cold_shift") is not None]
    if shifted:  # a rule that moves cold items up: named, so its rows are read against the control
        out += ["Cold shift (cold items' scores raised by b of the user's score sd, b chosen on validation "
                "NDCG@10): " + ", ".join(f"`{r}` b = {models.train[r]['cold_shift']:g}" for r in shifted) + ".", ""]
    for pool in pools:
        first = models.evals[placing[0]]
        out += [f"**Pool `{pool}`**: {first.get(f'test/cold_pool/{pool}/items', '?')} items, "
                f"{first.get(f'test/cold_pool/{pool}/targets', '?')} reachable test targets.", "",
                *control_table(pool, placing, models, comp, cfg), "", control_sentence(pool, placing, comp, cfg), ""]
    if left_out:
        out.append(f"Not shown (no item of pool `{WIDEST_POOL}` in any list): {quoted(left_out)}.")
    return out


def plot_tables(names: list[str], models: Models, protocol: str, cfg: ReportConfig) -> dict[str, pd.DataFrame]:
    """Long tables for the figures (means over seeds): metrics_vs_k (run, k, metric, value), cold_warm (run, slice,
    metric, value)."""
    ev = models.evals
    ks = sorted({int(k.split("@")[1]) for r in names for k in ev[r] if re.fullmatch(r"test/(hr|ndcg|mrr)@\d+", k)})
    vs_k = [(r, k, m, ev[r][f"test/{m}@{k}"]) for r in names for m in METRICS for k in ks if f"test/{m}@{k}" in ev[r]]
    cw = [(r, s, m, ev[r][key]) for r in names
          for s, prefix in (("all", "test"), ("warm_target", "test/warm_target"), ("cold_target", "test/cold_target"))
          for m in cfg.significance_metrics if (key := f"{prefix}/{m}") in ev[r]]
    return {"metrics_vs_k": pd.DataFrame(vs_k, columns=["run", "k", "metric", "value"]).assign(protocol=protocol),
            "cold_warm": pd.DataFrame(cw, columns=["run", "slice", "metric", "value"]).assign(protocol=protocol)}


def significance_note(base: str | None, cold: str | None, n_tests: int, cfg: ReportConfig) -> str:
    """The leaderboard's footnote: what † means, against which model, over how many Holm-corrected tests."""
    refs = ([f"from the baseline `{base}` on all test users"] if base else []) + \
        ([f"from the cold baseline `{cold}` on the cold-target users (cold columns)"] if cold else [])
    out = []
    if refs:
        out.append(f"† differs {' and '.join(refs)}: the {1 - cfg.alpha:.0%} bootstrap CI ({cfg.n_bootstrap} "
                   f"resamples) of the mean per-user difference excludes 0 and the Wilcoxon signed-rank p, "
                   f"Holm-adjusted over all {n_tests} tests of this {cfg.family} (those of every table below "
                   f"included), is below {cfg.alpha}. Tested: "
                   f"{', '.join(m.upper() for m in cfg.significance_metrics)}; other cells are not tested.")
    for ref, b, key, what in ((base, cfg.baseline, "baseline", "all-user"),
                              (cold, cfg.cold_baseline, "cold_baseline", "cold-slice")):
        if not ref:
            out.append(f"No {b.backbone} model with representation {b.representation} (report.{key}) in this "
                       f"protocol: no {what} tests.")
    return " ".join(out)


def content_section(names: list[str], models: Models) -> list[str]:
    """Content representations (item text template, encoder): the table and the best vectors per backbone and
    representation; nothing when no content run reads other vectors than data/embed."""
    rows = content_rows(names, models)
    if not rows:
        return []
    return ["### Content representations (test)", "",
            "Content runs by the item vectors they read: `embed` = data/embed (params `embed`), any other name = "
            "data/vectors/<name> (params `text_vectors`, `collab_vectors`). `vs embed`: against the run of the same "
            "backbone and representation on `embed`.", "", *rows, ""]


def protocol_section(protocol: str, names: list[str], models: Models, comp: dict, n_tests: int, split: dict,
                     cfg: ReportConfig, figures: dict[str, str]) -> tuple[list[str], dict]:
    """Markdown of one protocol and its JSON leaderboard entry; `comp` holds its Holm-corrected tests."""
    base = reference_of(names, models, cfg.baseline)
    cold = reference_of(names, models, cfg.cold_baseline)
    names = ordered(names, models)
    marks = {m: role for m, role in ((cold, "cold baseline"), (base, "baseline")) if m}
    first = models.evals[names[0]]
    kind = PROTOCOL_NAMES.get(split.get("type"), split.get("type", "?"))
    ks = sorted({int(k.split("@")[1]) for k in first if re.fullmatch(r"test/ndcg@\d+", k)})
    cols = [f"test/{m}@{k}" for m in METRICS for k in ks] + [f"test/cold_target/{m}" for m in cfg.significance_metrics]
    seeds = members_note(names, models)
    out = [
        f"## Protocol `{protocol}`: {kind}", "",
        f"{first.get('test/users', '?')} test users, one target each; {first.get('test/cold_target/users', 0)} "
        f"targets are cold (no interaction in the training data); full-catalogue ranking, seen items removed. "
        + seed_note(names, models), "",
        "### What works best", "", *summary(names, base, models, comp), "",
        "### Leaderboard (test)", "",
        "Grouped by family, best test NDCG@10 first within a family. Best per column in bold.", "",
        *metric_table(names, models, comp, cols, marks), "",
        significance_note(base, cold, n_tests, cfg), "",
        f"Seeds: {seeds}." if seeds else "", "",
        figures.get(f"metrics_vs_k_{protocol}", ""), "",
        "### Item representation x backbone (test)", "", *representation_grid(names, models), "",
        *content_section(names, models),
        "### Cold vs warm targets (test)", "", "Grouped by family, best cold-target HR@10 first within a family.", "",
        *metric_table(ordered(names, models, COLD), models, comp,
                      [f"test/{s}/{m}" for s in ("warm_target", "cold_target") for m in cfg.significance_metrics],
                      marks, describe=False), "",
        figures.get(f"cold_warm_{protocol}", ""), "",
        "### Cold-start control (test)", "", *control_section(names, models, comp, cfg), "",
        "### Tokenizer x generator (test)", "", *generator_grid(names, models), "",
        "### Semantic-ID generators: per-level prefix hit rates (test)", "",
        "Share of test users whose target's first l codes equal those of one of the top-10 generated items.", "",
        *generator_rows(names, models), "",
        figures.get(f"val_curves_{protocol}", ""), "",
    ]
    published = cfg.published.get(split.get("type"), [])
    if published:
        out += ["### Against published figures (same protocol on Beauty; other code and item text, not tested)", "",
                *published_rows(names, models, published), ""]
    if comp:
        out += ["### Paired tests", "", f"Holm over all {n_tests} tests of this {cfg.family}; `against` = the "
                "reference of the test (its mean is the first mean column).", "", *comparison_rows(comp), ""]
    entry = {"baseline": base, "cold_baseline": cold, "alpha": cfg.alpha, "family": cfg.family, "holm_tests": n_tests,
             "models": {r: {"runs": models.members[r], "seeds": models.seeds[r], "metrics": models.evals[r],
                            **({"sd": models.sd[r]} if r in models.sd else {})} for r in names},
             "comparisons": comp}
    return out, entry
