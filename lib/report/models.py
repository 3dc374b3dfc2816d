"""The report's unit, a model: the runs that differ only in their seed, with metrics averaged over seeds.

Also what picks models out of a protocol: the family order of the tables, the references of the
paired tests (params `report.baseline`, `report.cold_baseline`) and the cold pools their lists place.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.evaluate import loaded_ranks
from lib.metrics import per_user_metrics
from lib.report.config import Baseline, ReportConfig

FAMILY_ORDER = ("rankers", "content_rankers", "code_rankers", "generators", "parallel_generators")
KEY, COLD = "test/ndcg@10", "test/cold_target/hr@10"
VAL_KEY = "val/ndcg@10"  # what the report chooses on
SEED_OVERRIDE = "train.seed"  # the override that makes a run another seed of the same model
WIDEST_POOL = "untrained"  # every other cold pool is a subset: a list without its items places no cold item
POOLS = {"untrained": "items without an interaction in the model's training data (the cold targets' items)",
         "known_at_test": "of those, the items with an interaction in the split's training part (at or before "
                          "T_test; under leave-one-out, before the test targets): the ones a system could know "
                          "when the test period starts"}


@dataclass
class ReportInputs:
    runs: dict[str, dict]  # run -> run.json
    evals: dict[str, dict]  # run -> metrics/eval/<run>.json
    per_user: dict[str, pd.DataFrame]  # run -> results/<run>/ranks.parquet
    train: dict[str, dict] = field(default_factory=dict)  # run -> metrics/train/<run>.json
    tokenizers: dict[str, dict] = field(default_factory=dict)  # tokenizer -> metrics/tokenizers/<name>.json
    splits: dict[str, dict] = field(default_factory=dict)  # protocol -> metrics/split/<protocol>.json
    decoding: dict | None = None  # metrics/decoding.json (stage `decoding`), when given


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


# --- seeds: runs that differ only in their seed ------------------------------------------------------------

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


# --- references and cold pools of a protocol's models -----------------------------------------------------

def ordered(names: list[str], models: Models, key: str = KEY) -> list[str]:
    """Models grouped by family (FAMILY_ORDER), best first by `key` within a family."""
    fam = {f: i for i, f in enumerate(FAMILY_ORDER)}
    return sorted(names, key=lambda r: (fam.get(models.runs[r]["family"], len(fam)),
                                        -models.evals[r].get(key, -1.0), r))


def reference_of(names: list[str], models: Models, b: Baseline) -> str | None:
    """The protocol's model of backbone + representation `b`: the one without overrides on the default item
    vectors (data/embed: no `vectors` in run.json), else the first such by name."""
    found = sorted((bool(models.runs[r].get("overrides")), bool(models.runs[r].get("vectors")), r) for r in names
                   if models.runs[r]["backbone"] == b.backbone and models.runs[r]["representation"] == b.representation)
    return found[0][-1] if found else None


def pools_of(names: list[str], models: Models) -> list[str]:
    """Cold pools the protocol's evaluations report (`test/cold_pool/<P>/items`), known pools first."""
    found = {k.split("/")[2] for r in names for k in models.evals[r] if re.fullmatch(r"test/cold_pool/\w+/items", k)}
    return sorted(found, key=lambda p: (list(POOLS).index(p) if p in POOLS else len(POOLS), p))


def slots(evals: dict, pool: str, metric: str) -> float:
    """Mean number of `pool` items in a model's lists at the cut-off of `metric` (0 when not evaluated)."""
    return evals.get(f"test/cold_pool/{pool}/cold_slots@{metric.split('@')[1]}", 0.0)


def placing_cold(names: list[str], models: Models, cfg: ReportConfig) -> list[str]:
    """Models whose top-K lists hold items of the widest cold pool (K of the first significance metric)."""
    return [r for r in names if slots(models.evals[r], WIDEST_POOL, cfg.significance_metrics[0]) > 0]
