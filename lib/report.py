"""reports/RESULTS.md: the study's write-up, rendered from committed per-run files only (never typed by hand).

Inputs (all small and in git): each run's run.json (what it is: family, backbone, representation,
tokenizer, protocol, seed, overrides), its evaluation metrics, its per-user target ranks (and cold-pool
control values), its training facts and curves, each tokenizer's diagnostics and code-usage table,
each protocol's split facts. Nothing here recognises a run by its name: tables group runs by the
attributes in run.json, and every sentence with a number is computed.

The report's unit is a model: the runs that differ only in their seed (`collapse_seeds`). Its metrics
are means over seeds (± sample sd), and its per-user values, recomputed from the stored ranks, are
averaged over seeds before the paired tests. Per protocol, a model is tested on all test users
against the baseline (params `report.baseline`), on the cold-target users against the cold baseline
(`report.cold_baseline`, a model that can reach cold items: an ID model scores 0 there by
construction), and on the targets reachable in each cold pool against the random cold-slot control
(lib/evaluate.py). Holm's correction covers every test of a protocol or of the report
(`report.family`, lib/significance.py).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from lib.evaluate import loaded_ranks
from lib.metrics import METRICS, per_user_metrics
from lib.significance import mark_significant, paired_test

FAMILY_ORDER = ("rankers", "content_rankers", "code_rankers", "generators")
PROTOCOL_NAMES = {"global_temporal": "global temporal split (Time to Split)",
                  "leave_one_out": "leave-one-out (last item test, second-to-last validation)"}
KEY, COLD = "test/ndcg@10", "test/cold_target/hr@10"
SEED_OVERRIDE = "train.seed"  # the override that makes a run another seed of the same model
# split facts that must agree for two protocols to be "the same split, other tie order"
SPLIT_BOUNDARIES = ("type", "t_val", "t_test", "retrain_on_validation")
WIDEST_POOL = "untrained"  # every other cold pool is a subset: a list without its items places no cold item
POOLS = {"untrained": "items without an interaction in the model's training data (the cold targets' items)",
         "known_at_test": "of those, the items with an interaction at or before T_test: the ones a system could "
                          "know when the test period starts (temporal splits only)"}


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


@dataclass
class ReportInputs:
    runs: dict[str, dict]  # run -> run.json
    evals: dict[str, dict]  # run -> metrics/eval/<run>.json
    per_user: dict[str, pd.DataFrame]  # run -> results/<run>/ranks.parquet
    train: dict[str, dict] = field(default_factory=dict)  # run -> metrics/train/<run>.json
    tokenizers: dict[str, dict] = field(default_factory=dict)  # tokenizer -> metrics/tokenizers/<name>.json
    splits: dict[str, dict] = field(default_factory=dict)  # protocol -> metrics/split/<protocol>.json


@dataclass
class Models:
    """The report's unit: one model = the runs that differ only in their seed (`collapse_seeds`)."""
    runs: dict[str, dict]  # model -> its named member's run.json, without the seed override
    evals: dict[str, dict]  # model -> eval metrics, mean over its seeds
    sd: dict[str, dict] = field(default_factory=dict)  # model -> sample sd over seeds (models with > 1 seed)
    members: dict[str, list[str]] = field(default_factory=dict)  # model -> its runs, by name
    train: dict[str, dict] = field(default_factory=dict)  # model -> training metrics, mean over seeds
    # model -> per test user: user, target_cold, pool_<P>, metrics and control_<P>/<m>, mean over seeds
    values: dict[str, pd.DataFrame] = field(default_factory=dict)
    seeds: dict[str, list] = field(default_factory=dict)  # model -> its members' run.json seeds

    def n_seeds(self, model: str) -> int:
        return len(self.members.get(model, [model]))


@dataclass
class Report:
    markdown: str
    leaderboard: dict  # JSON: per protocol, baselines, models' test metrics (mean, sd, runs), paired tests
    tables: dict[str, pd.DataFrame]  # long tables behind the figures: metrics_vs_k, cold_warm


# --- models: runs that differ only in their seed -----------------------------------------------------------

def _without_seed(overrides: dict | None) -> dict:
    return {k: v for k, v in (overrides or {}).items() if k != SEED_OVERRIDE}


def model_key(info: dict) -> str:
    """What makes two runs the same model: every run.json attribute but the name and the seed."""
    same = {k: v for k, v in info.items() if k not in ("name", "seed", "overrides")}
    return json.dumps({**same, "overrides": _without_seed(info.get("overrides"))}, sort_keys=True, default=str)


def group_seeds(runs: dict[str, dict]) -> dict[str, list[str]]:
    """run -> run.json  ->  model name -> its runs, the named one first.

    A model is named after its member without a `train.seed` override (the section's own seed),
    else after its first member by name.
    """
    groups: dict[str, list[str]] = {}
    for r in sorted(runs):
        groups.setdefault(model_key(runs[r]), []).append(r)
    out = {}
    for members in groups.values():
        plain = [r for r in members if SEED_OVERRIDE not in (runs[r].get("overrides") or {})]
        name = plain[0] if plain else members[0]
        out[name] = [name] + [r for r in members if r != name]
    return dict(sorted(out.items()))


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def mean_sd(dicts: list[dict]) -> tuple[dict, dict]:
    """Flat metric dicts of a model's seeds (named member first) -> (mean, sample sd) per key.

    A value all seeds agree on (counts, names, one seed) is kept as it is; other numbers are averaged;
    other disagreeing values are the named member's. The sd is there only with more than one seed.
    """
    mean, sd = {}, {}
    for k, first in dicts[0].items():
        vals = [d.get(k) for d in dicts]
        numeric = all(_is_number(v) for v in vals)
        mean[k] = first if all(v == first for v in vals) or not numeric else round(float(np.mean(vals)), 6)
        if numeric and len(dicts) > 1:
            sd[k] = round(float(np.std(vals, ddof=1)), 6)
    return mean, sd


def model_values(frames: dict[str, pd.DataFrame], ks) -> pd.DataFrame:
    """A model's per-user files (run -> ranks.parquet, named member first) -> per test user (stored order):
    user, target_cold, pool_<P> flags, HR/NDCG/MRR@k and control_<P>/<m> columns, each averaged over seeds."""
    tests = {r: f[f["split"] == "test"].reset_index(drop=True) for r, f in frames.items()}
    names = list(tests)
    first = tests[names[0]]
    for r in names[1:]:
        if not np.array_equal(tests[r]["user"].to_numpy(), first["user"].to_numpy()):
            raise ValueError(f"run {r!r}: its test users differ from those of {names[0]!r}, a seed of the same model")
    common = set.intersection(*(set(t.columns) for t in tests.values()))
    flags = [c for c in first.columns if c in ("user", "target_cold") or (c.startswith("pool_") and c in common)]
    controls = sorted(c for c in common if c.startswith("control_"))
    metrics = sum(per_user_metrics(loaded_ranks(t["rank"].to_numpy()), ks) for t in tests.values()) / len(tests)
    ctl = pd.DataFrame({c: sum(t[c].to_numpy(np.float64) for t in tests.values()) / len(tests) for c in controls})
    return pd.concat([first[flags], metrics, ctl], axis=1)


def collapse_seeds(inp: ReportInputs, ks) -> Models:
    """Runs -> models: means (and sd) of eval and train metrics over seeds, per-user values at cut-offs `ks`."""
    out = Models(runs={}, evals={})
    for name, members in group_seeds(inp.runs).items():
        info = dict(inp.runs[name])
        out.runs[name] = info | {"overrides": _without_seed(info.get("overrides"))}
        out.evals[name], sd = mean_sd([inp.evals[r] for r in members])
        if sd:
            out.sd[name] = sd
        out.members[name] = members
        out.seeds[name] = [inp.runs[r].get("seed") for r in members]
        trained = [inp.train[r] for r in members if r in inp.train]
        if trained:
            out.train[name] = mean_sd(trained)[0]
        out.values[name] = model_values({r: inp.per_user[r] for r in members}, ks)
    return out


# --- paired tests ------------------------------------------------------------------------------------------

def ordered(names: list[str], models: Models, key: str = KEY) -> list[str]:
    """Models grouped by family (FAMILY_ORDER), best first by `key` within a family."""
    fam = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(names, key=lambda r: (fam.get(models.runs[r]["family"], len(fam)),
                                        -models.evals[r].get(key, -1.0), r))


def reference_of(names: list[str], models: Models, b: Baseline) -> str | None:
    """The protocol's model of backbone + representation `b`: the one without overrides, else the first by name."""
    found = sorted((bool(models.runs[r].get("overrides")), r) for r in names
                   if models.runs[r]["backbone"] == b.backbone and models.runs[r]["representation"] == b.representation)
    return found[0][1] if found else None


def _test(base: np.ndarray, other: np.ndarray, against: str, cfg: ReportConfig) -> dict:
    return {"against": against, **paired_test(base, other, cfg.n_bootstrap, cfg.alpha, cfg.seed)}


def tests_vs_model(names: list[str], ref: str, models: Models, cfg: ReportConfig,
                   prefix: str = "test", mask_column: str | None = None) -> dict[str, dict[str, dict]]:
    """model -> {prefix/metric: paired test vs `ref`} on all test users, or on those where `mask_column` holds."""
    ref_vals = models.values[ref]
    mask = ref_vals[mask_column].to_numpy(bool) if mask_column else np.ones(len(ref_vals), bool)
    out: dict[str, dict[str, dict]] = {}
    for name in names:
        if name == ref or not mask.any():
            continue
        vals = models.values[name]
        if not np.array_equal(vals["user"].to_numpy(), ref_vals["user"].to_numpy()):
            raise ValueError(f"run {name!r}: its test users differ from the baseline {ref!r}'s (other split?)")
        out[name] = {f"{prefix}/{m}": _test(ref_vals[m].to_numpy()[mask], vals[m].to_numpy()[mask], ref, cfg)
                     for m in cfg.significance_metrics}
    return out


def pools_of(names: list[str], models: Models) -> list[str]:
    """Cold pools the protocol's evaluations report (`test/cold_pool/<P>/items`), known pools first."""
    found = {k.split("/")[2] for r in names for k in models.evals[r] if re.fullmatch(r"test/cold_pool/\w+/items", k)}
    return sorted(found, key=lambda p: (list(POOLS).index(p) if p in POOLS else len(POOLS), p))


def control_metrics(pool: str, cfg: ReportConfig, values: pd.DataFrame) -> list[str]:
    """The significance metrics that have a per-user control column for `pool` (evaluate.control_k)."""
    return [m for m in cfg.significance_metrics if f"control_{pool}/{m}" in values.columns]


def slots(evals: dict, pool: str, metric: str) -> float:
    """Mean number of `pool` items in a model's lists at the cut-off of `metric` (0 when not evaluated)."""
    return evals.get(f"test/cold_pool/{pool}/cold_slots@{metric.split('@')[1]}", 0.0)


def placing_cold(names: list[str], models: Models, cfg: ReportConfig) -> list[str]:
    """Models whose top-K lists hold items of the widest cold pool (K of the first significance metric)."""
    return [r for r in names if slots(models.evals[r], WIDEST_POOL, cfg.significance_metrics[0]) > 0]


def tests_vs_control(names: list[str], models: Models, cfg: ReportConfig) -> dict[str, dict[str, dict]]:
    """model -> {test/cold_pool/<P>/<m>: paired test vs the random cold-slot control} on the users whose target
    is reachable in pool P; only models that place items of P."""
    out: dict[str, dict[str, dict]] = {}
    for name in placing_cold(names, models, cfg):
        v = models.values[name]
        for pool in pools_of([name], models):
            if f"pool_{pool}" not in v.columns:
                continue
            mask = v[f"pool_{pool}"].to_numpy(bool)
            for m in control_metrics(pool, cfg, v):
                if mask.any() and slots(models.evals[name], pool, m) > 0:
                    out.setdefault(name, {})[f"test/cold_pool/{pool}/{m}"] = _test(
                        v[f"control_{pool}/{m}"].to_numpy()[mask], v[m].to_numpy()[mask], "control", cfg)
    return out


def protocol_tests(names: list[str], models: Models, cfg: ReportConfig) -> dict[str, dict[str, dict]]:
    """Every paired test of one protocol, not yet Holm-corrected: model -> {key: test}.

    All users vs `report.baseline` (test/<m>), cold targets vs `report.cold_baseline`
    (test/cold_target/<m>), reachable cold targets vs the control (test/cold_pool/<P>/<m>).
    """
    names = ordered(names, models)
    parts = []
    if (base := reference_of(names, models, cfg.baseline)) is not None:
        parts.append(tests_vs_model(names, base, models, cfg))
    if (cold := reference_of(names, models, cfg.cold_baseline)) is not None:
        parts.append(tests_vs_model(names, cold, models, cfg, "test/cold_target", "target_cold"))
    parts.append(tests_vs_control(names, models, cfg))
    out: dict[str, dict[str, dict]] = {}
    for name in names:
        for part in parts:
            out.setdefault(name, {}).update(part.get(name, {}))
    return {k: v for k, v in out.items() if v}


def correct(comparisons: dict[str, dict[str, dict[str, dict]]], cfg: ReportConfig) -> dict[str, int]:
    """Holm over each family (`cfg.family`: a protocol's tests, or all of the report's) in place;
    returns protocol -> the size of its family."""
    flat = {p: [t for tests in comp.values() for t in tests.values()] for p, comp in comparisons.items()}
    if cfg.family == "report":
        everything = [t for p in sorted(flat) for t in flat[p]]
        mark_significant(everything, cfg.alpha)
        return {p: len(everything) for p in flat}
    for tests in flat.values():
        mark_significant(tests, cfg.alpha)
    return {p: len(tests) for p, tests in flat.items()}


# --- tables and sentences ----------------------------------------------------------------------------------

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


def _names(names) -> str:
    return ", ".join(f"`{r}`" for r in names)


def label(model: str, models: Models, marks: dict[str, str] | None = None) -> str:
    """A model's row name: its seed count when it has several, and its role (baseline, cold baseline)."""
    n = models.n_seeds(model)
    return model + (f" ({n} seeds)" if n > 1 else "") + (f" ({marks[model]})" if model in (marks or {}) else "")


def metric_table(names: list[str], models: Models, comparisons: dict, cols: list[str], marks: dict[str, str],
                 describe: bool = True) -> list[str]:
    """One row per model, a column per flat metric key: mean over seeds (± sd with several); best mean per column
    in bold, † where the paired test of that key is significant."""
    ev = models.evals
    best = {c: max((ev[r][c] for r in names if c in ev[r]), default=None) for c in cols}
    head = ["run", "family", "representation"] if describe else ["run"]
    head += [("cold " if "cold_target/" in c else "warm " if "warm_target/" in c else "")
             + c.rsplit("/", 1)[1].upper() for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - len(cols) - 1) + "---:|" * len(cols)]
    for r in names:
        cells = []
        for c in cols:
            if c not in ev[r]:
                cells.append("–")
                continue
            cell = f"{ev[r][c]:.4f}"
            cell = f"**{cell}**" if ev[r][c] == best[c] else cell
            cell += f" ± {models.sd[r][c]:.4f}" if c in models.sd.get(r, {}) else ""
            cells.append(cell + ("†" if comparisons.get(r, {}).get(c, {}).get("significant") else ""))
        info = models.runs[r]
        rep = info["representation"] + (f" ({info['tokenizer']})" if info.get("tokenizer") else "")
        name = label(r, models, marks)
        lines.append("| " + " | ".join(([name, info["family"], rep] if describe else [name]) + cells) + " |")
    return lines


def comparison_rows(comparisons: dict) -> list[str]:
    """Every paired test of a protocol: what against what, the means, the difference, its CI, raw and Holm p."""
    rows = [[run, key, t["against"], t["baseline"], t["model"], f"{t['diff']:+.4f}",
             f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]", f"{t['p_value']:.2g}", f"{t['p_holm']:.2g}",
             "yes" if t["significant"] else "no"]
            for run, tests in comparisons.items() for key, t in tests.items()]
    return _table(["run", "metric", "against", "against's mean", "run's mean", "diff", "CI", "p (Wilcoxon)",
                   "p (Holm)", "significant"], rows)


def summary(names: list[str], base: str | None, models: Models, comp: dict) -> list[str]:
    """Computed sentences: the best model chosen on validation (reported on test), best on cold targets."""
    ev = models.evals
    pick = max(names, key=lambda r: ev[r].get("val/ndcg@10", -1.0))
    line = (f"- **Chosen on validation NDCG@10: `{pick}`** (val {ev[pick]['val/ndcg@10']:.4f}); test NDCG@10 "
            f"{ev[pick][KEY]:.4f}, HR@10 {ev[pick]['test/hr@10']:.4f}")
    if base and pick != base:
        t = comp.get(pick, {}).get(KEY)
        line += f"; baseline `{base}` {ev[base][KEY]:.4f} ({_rel(ev[pick][KEY], ev[base][KEY])}"
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
                   + _names(sorted(no_cold)) + ".")
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


def representation_grid(names: list[str], models: Models) -> list[str]:
    """Representation x backbone of the ranker families, NDCG@10 and cold HR@10 on test (means over seeds).

    A cell shows the model with the section's own params (no `set` overrides); variants of it (another
    loss, ...) are in the leaderboard only. Without such a model, the first by name.
    """
    cell: dict[tuple[str, str], str] = {}
    for r in sorted(names, key=lambda r: (bool(models.runs[r].get("overrides")), r), reverse=True):  # best last
        if models.runs[r]["family"] != "generators":
            cell[(models.runs[r]["representation"], models.runs[r]["backbone"])] = r
    backbones = sorted({b for _, b in cell})
    # ties by name: a set's order follows the per-process hash seed, and the report must not change with it
    reps = sorted({rep for rep, _ in cell},
                  key=lambda rep: (-max(models.evals[cell[(rep, b)]][KEY] for b in backbones if (rep, b) in cell), rep))
    rows = [[rep] + [models.evals[cell[(rep, b)]].get(k) if (rep, b) in cell else None
                     for b in backbones for k in (KEY, COLD)] for rep in reps]
    return _table(["representation", *(f"{b} {n}" for b in backbones for n in ("NDCG@10", "cold HR@10"))], rows)


def generator_rows(names: list[str], models: Models) -> list[str]:
    """Per generator: how often the target's first l codes are in the top 10, and decoding facts."""
    gens = [r for r in names if models.runs[r]["family"] == "generators" and r in models.train]
    if not gens:
        return ["No Semantic-ID generator in this protocol."]
    levels = max(int(models.runs[r].get("n_levels") or 0) for r in gens)
    head = (["run", "tokenizer"] + [f"prefix HR@10, {i} code{'s' * (i > 1)}" for i in range(1, levels + 1)]
            + ["invalid IDs", "users/s (test)", "NDCG@10"])
    tr = models.train
    rows = [[r, models.runs[r]["tokenizer"]]
            + [tr[r].get(f"test/prefix_hr@10/codes{i}") for i in range(1, levels + 1)]
            + [tr[r].get("test/invalid_id_rate"), tr[r].get("test/users_per_second"), models.evals[r][KEY]]
            for r in sorted(gens, key=lambda r: (-models.evals[r][KEY], r))]
    return _table(head, rows)


def _lift(model: float | None, control: float | None) -> str:
    return f"{model / control:.2f}x" if model is not None and control else "–"


def control_table(pool: str, names: list[str], models: Models, comp: dict, cfg: ReportConfig) -> list[str]:
    """One row per model: cold slots, reachable targets, its metric on them, the control's, lift; † = the
    paired test vs the control is significant."""
    pre = f"test/cold_pool/{pool}"
    k = cfg.significance_metrics[0].split("@")[1]
    head = ["run", f"cold slots in top {k}", "reachable targets"]
    for m in cfg.significance_metrics:
        head += [m.upper(), f"control {m.upper()}", f"lift {m.upper()}"]
    rows = []
    for r in names:
        ev = models.evals[r]
        cells: list = [label(r, models), ev.get(f"{pre}/cold_slots@{k}"), ev.get(f"{pre}/targets")]
        for m in cfg.significance_metrics:
            model, control = ev.get(f"{pre}/model/{m}"), ev.get(f"{pre}/control/{m}")
            dagger = "†" if comp.get(r, {}).get(f"{pre}/{m}", {}).get("significant") else ""
            cells += [_fmt(model) + dagger if model is not None else None, control, _lift(model, control)]
        rows.append(cells)
    return _table(head, rows)


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
           "control on the test targets reachable in the pool. Pools: "
           + "; ".join(f"`{p}` = {POOLS.get(p, 'as the evaluator defines it')}" for p in pools) + ".", ""]
    placing = placing_cold(names, models, cfg)
    if not placing:
        return out + [f"No model places an item of pool `{WIDEST_POOL}` in its top "
                      f"{cfg.significance_metrics[0].split('@')[1]}: no control comparison."]
    left_out = [r for r in names if r not in placing]
    for pool in pools:
        first = models.evals[placing[0]]
        out += [f"**Pool `{pool}`**: {first.get(f'test/cold_pool/{pool}/items', '?')} items, "
                f"{first.get(f'test/cold_pool/{pool}/targets', '?')} reachable test targets.", "",
                *control_table(pool, placing, models, comp, cfg), "", control_sentence(pool, placing, comp, cfg), ""]
    if left_out:
        out.append(f"Not shown (no item of pool `{WIDEST_POOL}` in any list): {_names(left_out)}.")
    return out


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
    """Training cost per run (every seed is a run), grouped by family, slowest first; totals per family."""
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


def published_rows(names: list[str], models: Models, published: list[dict]) -> list[str]:
    """Our models next to published figures of the same protocol (other code and item text: not tested)."""
    rows = [[f"`{r}` (this study)", models.evals[r].get("test/hr@10"), models.evals[r].get(KEY), "committed run"]
            for r in sorted(names, key=lambda r: -models.evals[r][KEY])]
    rows += [[p.get("model"), p.get("hr@10"), p.get("ndcg@10"), p.get("source")] for p in published]
    return _table(["model", "HR@10 (= Recall@10)", "NDCG@10", "source"], rows)


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
        "### Cold vs warm targets (test)", "", "Grouped by family, best cold-target HR@10 first within a family.", "",
        *metric_table(ordered(names, models, COLD), models, comp,
                      [f"test/{s}/{m}" for s in ("warm_target", "cold_target") for m in cfg.significance_metrics],
                      marks, describe=False), "",
        figures.get(f"cold_warm_{protocol}", ""), "",
        "### Cold-start control (test)", "", *control_section(names, models, comp, cfg), "",
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


# --- protocol effects: how much the protocol's choices move the figures -------------------------------------

def _pair_key(info: dict) -> str:
    """Models compared across protocols: same family, backbone, representation, overrides (tokenizer may differ)."""
    return json.dumps([info["family"], info["backbone"], info["representation"], info.get("overrides") or {}],
                      sort_keys=True, default=str)


def tie_pairs(by_protocol: dict[str, list[str]], models: Models,
              splits: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(file-order protocol, model, random-tie protocol, model) for the models of two protocols that are the
    same split (SPLIT_BOUNDARIES agree) but for the order of same-day interactions."""
    tie = {p: splits.get(p, {}).get("tie_break") for p in by_protocol}
    out = []
    for rp in sorted(p for p in by_protocol if tie[p] == "random"):
        for fp in sorted(p for p in by_protocol if tie[p] == "file_order"):
            if any(splits[fp].get(k) != splits[rp].get(k) for k in SPLIT_BOUNDARIES):
                continue
            for m in sorted(by_protocol[fp]):
                cands = [r for r in sorted(by_protocol[rp]) if _pair_key(models.runs[r]) == _pair_key(models.runs[m])]
                if len(cands) > 1:  # several tokenizers of one representation: the same name decides
                    cands = [r for r in cands if models.runs[r].get("tokenizer") == models.runs[m].get("tokenizer")]
                if len(cands) == 1:
                    out.append((fp, m, rp, cands[0]))
    return out


def tie_effects(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict]) -> list[str]:
    """(a) Same-day target shares per protocol, and models' test metrics under file-order vs random ties."""
    facts = [[f"`{p}`", s.get("tie_break"), s.get("val_same_day_target_fraction"),
              s.get("test_same_day_target_fraction")]
             for p in sorted(by_protocol) if "tie_break" in (s := splits.get(p, {}))]
    if not facts:
        return ["No protocol's split metrics record the tie order."]
    out = ["A same-day target shares its timestamp with the latest item of its input: which of the two is the "
           "target, and the input's order, come from the tie order alone (file order = the raw file's).", "",
           *_table(["protocol", "tie_break", "val same-day targets", "test same-day targets"], facts), ""]
    pairs = tie_pairs(by_protocol, models, splits)
    if not pairs:
        return out + ["No protocol with random tie order holds a model of a file-order protocol with the same "
                      "split: the effect of the tie order on the figures is not measured."]
    ev = models.evals
    rows = [[f"`{m}` ({models.n_seeds(m)}) / `{r}` ({models.n_seeds(r)})", f"`{fp}` / `{rp}`"]
            + [x for k in (KEY, "test/hr@10") for x in (ev[m].get(k), ev[r].get(k), _rel(ev[r][k], ev[m][k]))]
            for fp, m, rp, r in pairs]
    change = [(ev[r][KEY] - ev[m][KEY]) / ev[m][KEY] for _, m, _, r in pairs if ev[m][KEY]]
    out += _table(["models (seeds): file order / random", "protocols", "NDCG@10 file order", "NDCG@10 random",
                   "change", "HR@10 file order", "HR@10 random", "change"], rows)
    if change:
        out += ["", f"With random instead of file-order ties, test NDCG@10 changes by {min(change):+.0%} to "
                    f"{max(change):+.0%} over {len(change)} model pair(s)."]
    return out


def pool_effects(by_protocol: dict[str, list[str]], models: Models) -> list[str]:
    """(b) Cold pool sizes and reachable test targets per protocol."""
    rows = []
    for p in sorted(by_protocol):
        names = sorted(by_protocol[p])
        for pool in pools_of(names, models):
            ev = next(models.evals[r] for r in names if f"test/cold_pool/{pool}/items" in models.evals[r])
            n, users = ev.get(f"test/cold_pool/{pool}/targets"), ev.get("test/users")
            rows.append([f"`{p}`", f"`{pool}`", ev[f"test/cold_pool/{pool}/items"], n,
                         f"{n / users:.1%}" if n is not None and users else None])
    if not rows:
        return ["No evaluation reports cold pools."]
    return _table(["protocol", "pool", "items", "reachable test targets", "share of test targets"], rows)


def seed_effects(by_protocol: dict[str, list[str]], models: Models) -> list[str]:
    """(c) Spread of test NDCG@10 over seeds, for the models with several."""
    rows = [[f"`{p}`", f"`{r}`", models.n_seeds(r), models.evals[r][KEY], models.sd[r][KEY],
             f"{models.sd[r][KEY] / models.evals[r][KEY]:.1%}" if models.evals[r][KEY] else None]
            for p in sorted(by_protocol) for r in sorted(by_protocol[p]) if KEY in models.sd.get(r, {})]
    if not rows:
        return ["Every model has one seed: the spread over seeds is not measured."]
    return _table(["protocol", "model", "seeds", "mean test NDCG@10", "sd", "sd / mean"], rows)


def repeat_effects(by_protocol: dict[str, list[str]], splits: dict[str, dict]) -> list[str]:
    """(d) Targets already in their input: unreachable for every model once seen items are removed."""
    rows = [[f"`{p}`", s.get("val_repeat_targets"), s.get("val_users"), s.get("test_repeat_targets"),
             s.get("test_users")]
            for p in sorted(by_protocol) if "test_repeat_targets" in (s := splits.get(p, {}))]
    if not rows:
        return ["No protocol's split metrics count repeat targets."]
    return _table(["protocol", "val repeat targets", "val users", "test repeat targets", "test users"], rows)


def protocol_effects(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict]) -> list[str]:
    """The report's "Protocol effects" section: ties, cold pools, seeds, repeat targets."""
    return ["## Protocol effects", "",
            "How much the protocol's own choices move the figures.", "",
            "### Same-day ties", "", *tie_effects(by_protocol, models, splits), "",
            "### Cold pools", "", *pool_effects(by_protocol, models), "",
            "### Seeds", "", *seed_effects(by_protocol, models), "",
            "### Repeat targets", "", *repeat_effects(by_protocol, splits), ""]


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
            "## Training cost", "", *cost_rows(inp), ""]
    markdown = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"  # a missing figure leaves no gap
    return Report(markdown, leaderboard, {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame()
                                          for k, v in tables.items()})
