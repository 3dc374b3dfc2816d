"""reports/RESULTS.md: the study's write-up, rendered from committed per-run files only (never typed by hand).

Inputs (all small and in git): each run's run.json (what it is: family, backbone, representation,
tokenizer, protocol, seed), its evaluation metrics, its per-user target ranks, its training facts
and curves, each tokenizer's diagnostics and code-usage table, each protocol's split facts. Nothing
here recognises a run by its name: tables group runs by the attributes in run.json, and every
sentence with a number is computed.

Paired tests are run per protocol against the baseline run (params `report.baseline`: the run of
that backbone and representation), on per-user values recomputed from the stored ranks; Holm's
correction covers every test of a protocol (lib/significance.py).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lib.evaluate import loaded_ranks
from lib.metrics import METRICS, per_user_metrics
from lib.significance import mark_significant, paired_test

FAMILY_ORDER = ("rankers", "content_rankers", "code_rankers", "generators")
PROTOCOL_NAMES = {"global_temporal": "global temporal split (Time to Split)",
                  "leave_one_out": "leave-one-out (last item test, second-to-last validation)"}
KEY, COLD = "test/ndcg@10", "test/cold_target/hr@10"


@dataclass(frozen=True)
class Baseline:
    backbone: str = "sasrec"
    representation: str = "id"


@dataclass(frozen=True)
class ReportConfig:
    baseline: Baseline = field(default_factory=Baseline)  # per protocol, the run every other one is compared with
    significance_metrics: tuple[str, ...] = ("ndcg@10", "hr@10")  # tested on all test users and cold targets
    n_bootstrap: int = 1000  # user resamples for the CI of the mean difference
    alpha: float = 0.05  # CI level 1 - alpha; Holm-adjusted p threshold
    seed: int = 0  # bootstrap resampling (the same resamples for every run: common random numbers)
    # split type -> published figures on Beauty for orientation: [{model, hr@10, ndcg@10, source}, ...]
    published: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap: must be >= 1, got {self.n_bootstrap}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha: must be in (0, 1), got {self.alpha}")
        for m in self.significance_metrics:
            if not re.fullmatch(r"(hr|ndcg|mrr)@\d+", m):
                raise ValueError(f"significance_metrics: {m!r} is not hr|ndcg|mrr@K")


@dataclass
class ReportInputs:
    runs: dict[str, dict]  # run -> run.json
    evals: dict[str, dict]  # run -> metrics/eval/<run>.json
    per_user: dict[str, pd.DataFrame]  # run -> results/<run>/ranks.parquet
    train: dict[str, dict] = field(default_factory=dict)  # run -> metrics/train/<run>.json
    tokenizers: dict[str, dict] = field(default_factory=dict)  # tokenizer -> metrics/tokenizers/<name>.json
    splits: dict[str, dict] = field(default_factory=dict)  # protocol -> metrics/split/<protocol>.json


@dataclass
class Report:
    markdown: str
    leaderboard: dict  # JSON: per protocol, baseline, runs' test metrics, paired tests
    tables: dict[str, pd.DataFrame]  # long tables behind the figures: metrics_vs_k, cold_warm


def _fmt(x) -> str:
    """Table cell: metrics with 4 decimals, tiny values in e-notation, seconds/MB with few digits."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    if not isinstance(x, float):
        return str(x)
    a = abs(x)
    return (f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1
            else f"{x:.4f}" if a >= 1e-3 or a == 0 else f"{x:.2e}")


def _table(head: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows])


def _rel(new: float, old: float) -> str:
    return f"{(new - old) / old:+.0%}" if old else "n/a (baseline is 0)"


def ordered(runs: list[str], inp: ReportInputs, key: str = KEY) -> list[str]:
    """Runs grouped by family (FAMILY_ORDER), best first by `key` within a family."""
    fam = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(runs, key=lambda r: (fam.get(inp.runs[r]["family"], len(fam)),
                                       -inp.evals[r].get(key, -1.0), r))


def baseline_of(runs: list[str], inp: ReportInputs, cfg: ReportConfig) -> str | None:
    """The protocol's baseline run: backbone + representation of params `report.baseline` (first by name)."""
    b = cfg.baseline
    found = sorted(r for r in runs if inp.runs[r]["backbone"] == b.backbone
                   and inp.runs[r]["representation"] == b.representation)
    return found[0] if found else None


def per_user_values(frame: pd.DataFrame, split: str, ks) -> pd.DataFrame:
    """A run's per-user file -> per-user HR/NDCG/MRR@k of `split` users, in stored order."""
    rows = frame[frame["split"] == split]
    return per_user_metrics(loaded_ranks(rows["rank"].to_numpy()), ks)


def paired_tests(runs: list[str], base: str, inp: ReportInputs, cfg: ReportConfig) -> dict[str, dict[str, dict]]:
    """run -> {test/[cold_target/]metric: paired test vs base}; Holm over all of them (one family)."""
    ks = sorted({int(m.split("@")[1]) for m in cfg.significance_metrics})
    ref = inp.per_user[base][lambda f: f["split"] == "test"]
    base_vals = per_user_values(inp.per_user[base], "test", ks)
    cold = ref["target_cold"].to_numpy(bool)
    out: dict[str, dict[str, dict]] = {}
    for run in runs:
        if run == base:
            continue
        rows = inp.per_user[run][lambda f: f["split"] == "test"]
        if not np.array_equal(rows["user"].to_numpy(), ref["user"].to_numpy()):
            raise ValueError(f"run {run!r}: its test users differ from the baseline {base!r}'s (other split?)")
        vals = per_user_values(inp.per_user[run], "test", ks)
        out[run] = {}
        for prefix, mask in (("test", np.ones(len(ref), bool)), ("test/cold_target", cold)):
            if mask.any():
                for m in cfg.significance_metrics:
                    out[run][f"{prefix}/{m}"] = paired_test(base_vals[m].to_numpy()[mask], vals[m].to_numpy()[mask],
                                                            cfg.n_bootstrap, cfg.alpha, cfg.seed)
    mark_significant([t for tests in out.values() for t in tests.values()], cfg.alpha)
    return out


def metric_table(runs: list[str], inp: ReportInputs, comparisons: dict, cols: list[str], base: str | None,
                 describe: bool = True) -> list[str]:
    """One row per run, a column per flat metric key; best per column in bold, † where significant vs base."""
    ev = inp.evals
    best = {c: max((ev[r][c] for r in runs if c in ev[r]), default=None) for c in cols}
    head = ["run", "family", "representation"] if describe else ["run"]
    head += [("cold " if "cold_target/" in c else "warm " if "warm_target/" in c else "")
             + c.rsplit("/", 1)[1].upper() for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - len(cols) - 1) + "---:|" * len(cols)]
    for r in runs:
        cells = []
        for c in cols:
            if c not in ev[r]:
                cells.append("–")
                continue
            cell = f"{ev[r][c]:.4f}"
            cell = f"**{cell}**" if ev[r][c] == best[c] else cell
            cells.append(cell + ("†" if comparisons.get(r, {}).get(c, {}).get("significant") else ""))
        info = inp.runs[r]
        rep = info["representation"] + (f" ({info['tokenizer']})" if info.get("tokenizer") else "")
        name = f"{r} (baseline)" if r == base else r
        lines.append("| " + " | ".join(([name, info["family"], rep] if describe else [name]) + cells) + " |")
    return lines


def comparison_rows(comparisons: dict) -> list[str]:
    rows = [[run, key, t["baseline"], t["model"], f"{t['diff']:+.4f}", f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]",
             f"{t['p_value']:.2g}", f"{t['p_holm']:.2g}", "yes" if t["significant"] else "no"]
            for run, tests in comparisons.items() for key, t in tests.items()]
    return _table(["run", "metric", "baseline", "run", "diff", "CI", "p (Wilcoxon)", "p (Holm)", "significant"], rows)


def summary(runs: list[str], base: str | None, inp: ReportInputs, comp: dict) -> list[str]:
    """Computed sentences: the best run chosen on validation (reported on test), best on cold targets."""
    ev = inp.evals
    pick = max(runs, key=lambda r: ev[r].get("val/ndcg@10", -1.0))
    line = (f"- **Chosen on validation NDCG@10: `{pick}`** (val {ev[pick]['val/ndcg@10']:.4f}); test NDCG@10 "
            f"{ev[pick][KEY]:.4f}, HR@10 {ev[pick]['test/hr@10']:.4f}")
    if base and pick != base:
        t = comp.get(pick, {}).get(KEY)
        line += f"; baseline `{base}` {ev[base][KEY]:.4f} ({_rel(ev[pick][KEY], ev[base][KEY])}"
        line += (f", {'significant' if t['significant'] else 'not significant'} after Holm: p = {t['p_holm']:.2g})"
                 if t else ")")
    out = [line + "."]
    top = max(runs, key=lambda r: ev[r][KEY])
    if top != pick:
        out.append(f"- Highest test NDCG@10 (not a selection: test is not used to choose): `{top}` {ev[top][KEY]:.4f}.")
    with_cold = [r for r in runs if ev[r].get(COLD, 0) > 0]
    if with_cold:
        bc = max(with_cold, key=lambda r: ev[r][COLD])
        out.append(f"- Highest cold-target HR@10 ({ev[bc].get('test/cold_target/users', '?')} test targets without a "
                   f"training interaction): `{bc}` {ev[bc][COLD]:.4f}.")
    no_cold = [r for r in runs if ev[r].get(COLD, 0) == 0 and "test/cold_target/users" in ev[r]]
    if no_cold and ev[runs[0]].get("test/cold_target/users"):
        out.append(f"- {len(no_cold)} of {len(runs)} runs put no cold target in any top 10: "
                   + ", ".join(f"`{r}`" for r in sorted(no_cold)) + ".")
    return out


def representation_grid(runs: list[str], inp: ReportInputs) -> list[str]:
    """Representation x backbone of the ranker families, NDCG@10 and cold HR@10 on test.

    A cell shows the run with the section's own params (no `set` overrides); variants of it (another
    loss, seed, ...) are in the leaderboard only. Without such a run, the first by name.
    """
    cell: dict[tuple[str, str], str] = {}
    for r in sorted(runs, key=lambda r: (bool(inp.runs[r].get("overrides")), r), reverse=True):  # best last
        if inp.runs[r]["family"] != "generators":
            cell[(inp.runs[r]["representation"], inp.runs[r]["backbone"])] = r
    backbones = sorted({b for _, b in cell})
    # ties by name: a set's order follows the per-process hash seed, and the report must not change with it
    reps = sorted({rep for rep, _ in cell},
                  key=lambda rep: (-max(inp.evals[cell[(rep, b)]][KEY] for b in backbones if (rep, b) in cell), rep))
    rows = [[rep] + [inp.evals[cell[(rep, b)]].get(k) if (rep, b) in cell else None
                     for b in backbones for k in (KEY, COLD)] for rep in reps]
    return _table(["representation", *(f"{b} {n}" for b in backbones for n in ("NDCG@10", "cold HR@10"))], rows)


def generator_rows(runs: list[str], inp: ReportInputs) -> list[str]:
    """Per generator: how often the target's first l codes are in the top 10, and decoding facts."""
    gens = [r for r in runs if inp.runs[r]["family"] == "generators" and r in inp.train]
    if not gens:
        return ["No Semantic-ID generator in this protocol."]
    levels = max(int(inp.runs[r].get("n_levels") or 0) for r in gens)
    head = (["run", "tokenizer"] + [f"prefix HR@10, {i} code{'s' * (i > 1)}" for i in range(1, levels + 1)]
            + ["invalid IDs", "users/s (test)", "NDCG@10"])
    rows = [[r, inp.runs[r]["tokenizer"]]
            + [inp.train[r].get(f"test/prefix_hr@10/codes{i}") for i in range(1, levels + 1)]
            + [inp.train[r].get("test/invalid_id_rate"), inp.train[r].get("test/users_per_second"), inp.evals[r][KEY]]
            for r in sorted(gens, key=lambda r: -inp.evals[r][KEY])]
    return _table(head, rows)


def tokenizer_rows(inp: ReportInputs) -> list[str]:
    """Codebook usage per level (codes used / perplexity), collisions and reconstruction per tokenizer."""
    if not inp.tokenizers:
        return ["No tokenizer metrics."]
    levels = max(int(t.get("levels", 0)) for t in inp.tokenizers.values())
    head = (["tokenizer", "method", "protocol"] + [f"L{i + 1} used / perplexity" for i in range(levels)]
            + ["collision rate", "largest group", "rel. error", "fit s"])
    rows = []
    for name, t in sorted(inp.tokenizers.items(), key=lambda kv: kv[1].get("collision_rate", 1.0)):
        use = [(f"{t[f'level_{i}']['codes_used']} / {t[f'level_{i}']['perplexity']:.0f}"
                if f"level_{i}" in t else None) for i in range(levels)]
        rows.append([name, t.get("method"), t.get("protocol"), *use, t.get("collision_rate"), t.get("largest_group"),
                     t.get("recon_rel", t.get("quant_rel")), t.get("train_seconds", t.get("fit_seconds"))])
    return _table(head, rows)


def cost_rows(inp: ReportInputs) -> list[str]:
    """Training cost per run, grouped by family, slowest first; totals per family."""
    runs = sorted(inp.train, key=lambda r: (FAMILY_ORDER.index(inp.runs[r]["family"])
                                            if r in inp.runs and inp.runs[r]["family"] in FAMILY_ORDER else 9,
                                            -(inp.train[r].get("train_seconds") or 0)))
    head = ["run", "family", "best epoch", "epochs run", "s / epoch", "train s", "peak MB", "parameters"]
    rows = [[r, inp.runs.get(r, {}).get("family"), t.get("best_epoch"), t.get("epochs"), t.get("seconds_per_epoch"),
             t.get("train_seconds"), t.get("peak_memory_mb"), t.get("parameters")]
            for r in runs for t in [inp.train[r]]]
    totals = {}
    for r in runs:
        totals.setdefault(inp.runs.get(r, {}).get("family", "?"), []).append(inp.train[r].get("train_seconds") or 0)
    lines = ", ".join(f"{f} {sum(v) / 60:.0f} min ({len(v)} runs)" for f, v in totals.items())
    return _table(head, rows) + ["", f"Training time (early stopping included; decoding, evaluation and tokenizers "
                                     f"not): {lines}; all {len(runs)} runs "
                                     f"{sum(map(sum, totals.values())) / 60:.0f} min."]


def plot_tables(runs: list[str], inp: ReportInputs, protocol: str, cfg: ReportConfig) -> dict[str, pd.DataFrame]:
    """Long tables for the figures: metrics_vs_k (run, k, metric, value), cold_warm (run, slice, metric, value)."""
    ks = sorted({int(k.split("@")[1]) for r in runs for k in inp.evals[r]
                 if re.fullmatch(r"test/(hr|ndcg|mrr)@\d+", k)})
    vs_k = [(r, k, m, inp.evals[r][f"test/{m}@{k}"]) for r in runs for m in METRICS for k in ks
            if f"test/{m}@{k}" in inp.evals[r]]
    cw = [(r, s, m, inp.evals[r][key]) for r in runs
          for s, prefix in (("all", "test"), ("warm_target", "test/warm_target"), ("cold_target", "test/cold_target"))
          for m in cfg.significance_metrics if (key := f"{prefix}/{m}") in inp.evals[r]]
    return {"metrics_vs_k": pd.DataFrame(vs_k, columns=["run", "k", "metric", "value"]).assign(protocol=protocol),
            "cold_warm": pd.DataFrame(cw, columns=["run", "slice", "metric", "value"]).assign(protocol=protocol)}


def published_rows(runs: list[str], inp: ReportInputs, published: list[dict]) -> list[str]:
    """Our runs next to published figures of the same protocol (other code and item text: not tested)."""
    rows = [[f"`{r}` (this study)", inp.evals[r].get("test/hr@10"), inp.evals[r].get(KEY), "committed run"]
            for r in sorted(runs, key=lambda r: -inp.evals[r][KEY])]
    rows += [[p.get("model"), p.get("hr@10"), p.get("ndcg@10"), p.get("source")] for p in published]
    return _table(["model", "HR@10 (= Recall@10)", "NDCG@10", "source"], rows)


def protocol_section(protocol: str, runs: list[str], inp: ReportInputs, cfg: ReportConfig,
                     figures: dict[str, str]) -> tuple[list[str], dict]:
    """Markdown of one protocol and its JSON leaderboard entry."""
    base = baseline_of(runs, inp, cfg)
    comp = paired_tests(runs, base, inp, cfg) if base else {}
    runs = ordered(runs, inp)
    split = inp.splits.get(protocol, {})
    first = inp.evals[runs[0]]
    seeds = sorted({inp.runs[r].get("seed") for r in runs})
    kind = PROTOCOL_NAMES.get(split.get("type"), split.get("type", "?"))
    ks = sorted({int(k.split("@")[1]) for k in first if re.fullmatch(r"test/ndcg@\d+", k)})
    cols = [f"test/{m}@{k}" for m in METRICS for k in ks] + [f"test/cold_target/{m}" for m in cfg.significance_metrics]
    tests = ", ".join(m.upper() for m in cfg.significance_metrics)
    out = [
        f"## Protocol `{protocol}`: {kind}", "",
        f"{first.get('test/users', '?')} test users, one target each; {first.get('test/cold_target/users', 0)} "
        f"targets are cold (no interaction in the training data); full-catalogue ranking, seen items removed. "
        f"{len(runs)} runs, one seed each (seed {', '.join(map(str, seeds))}): every figure below is a single run.", "",
        "### What works best", "", *summary(runs, base, inp, comp), "",
        "### Leaderboard (test)", "",
        "Grouped by family, best test NDCG@10 first within a family. Best per column in bold.", "",
        *metric_table(runs, inp, comp, cols, base), "",
        (f"† differs from the baseline `{base}` on the same users: the {1 - cfg.alpha:.0%} bootstrap CI "
         f"({cfg.n_bootstrap} resamples) of the mean per-user difference excludes 0 and the Wilcoxon signed-rank "
         f"p, Holm-adjusted over all {sum(len(t) for t in comp.values())} tests of this protocol, is below "
         f"{cfg.alpha}. Tested: {tests} on all test users and on the cold-target slice; other cells are not tested."
         if base else "No baseline run in this protocol: no paired tests."), "",
        figures.get(f"metrics_vs_k_{protocol}", ""), "",
        "### Item representation x backbone (test)", "", *representation_grid(runs, inp), "",
        "### Cold vs warm targets (test)", "", "Grouped by family, best cold-target HR@10 first within a family.", "",
        *metric_table(ordered(runs, inp, COLD), inp, comp,
                      [f"test/{s}/{m}" for s in ("warm_target", "cold_target") for m in cfg.significance_metrics],
                      base, describe=False), "",
        figures.get(f"cold_warm_{protocol}", ""), "",
        "### Semantic-ID generators: per-level prefix hit rates (test)", "",
        "Share of test users whose target's first l codes equal those of one of the top-10 generated items.", "",
        *generator_rows(runs, inp), "",
        figures.get(f"val_curves_{protocol}", ""), "",
    ]
    published = cfg.published.get(split.get("type"), [])
    if published:
        out += ["### Against published figures (same protocol on Beauty; other code and item text, not tested)", "",
                *published_rows(runs, inp, published), ""]
    if comp:
        out += [f"### Paired tests vs `{base}`", "", *comparison_rows(comp), ""]
    entry = {"baseline": base, "alpha": cfg.alpha, "runs": {r: inp.evals[r] for r in runs}, "comparisons": comp}
    return out, entry


def render(inp: ReportInputs, cfg: ReportConfig, figures: dict[str, str]) -> Report:
    """The whole RESULTS.md (+ leaderboard JSON, figure tables); `figures` maps name -> markdown image."""
    missing = sorted(set(inp.runs) ^ set(inp.evals) | set(inp.runs) ^ set(inp.per_user))
    if missing:
        raise ValueError(f"runs without all of run.json, eval metrics and per-user ranks: {missing}")
    by_protocol: dict[str, list[str]] = {}
    for r, info in sorted(inp.runs.items()):
        by_protocol.setdefault(info["protocol"], []).append(r)
    out = ["# Results", "",
           "Rendered by the `report` stage from committed files (`results/`, `metrics/`, `plots/`); do not edit by "
           "hand. Never compare figures across protocols: leave-one-out scores the same model about 2-2.5x higher.", ""]
    leaderboard, tables = {}, {"metrics_vs_k": [], "cold_warm": []}
    for protocol in sorted(by_protocol, key=lambda p: (p != "gts", p)):
        lines, leaderboard[protocol] = protocol_section(protocol, by_protocol[protocol], inp, cfg, figures)
        out += lines
        for name, t in plot_tables(by_protocol[protocol], inp, protocol, cfg).items():
            tables[name].append(t)
    out += ["## Tokenizers: codebook usage and collisions", "",
            "Perplexity = exp(entropy) of a level's code distribution over all items (max = codebook size). "
            "Rel. error = squared error over the embeddings' variance: the RQ-VAE's reconstruction, residual "
            "k-means' quantisation. Ordered by collision rate.", "",
            *tokenizer_rows(inp), "", figures.get("codebook_usage", ""), "",
            "## Training cost", "", *cost_rows(inp), ""]
    markdown = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"  # a missing figure leaves no gap
    return Report(markdown, leaderboard, {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame()
                                          for k, v in tables.items()})
