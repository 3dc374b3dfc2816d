"""The report's unit, a model: the runs that differ only in their seed, with metrics averaged over seeds.

Why per-user values are recomputed from the stored ranks rather than read from the eval means: the paired
tests need one value per test user, averaged over a model's seeds (lib/significance.py), and every table
cell then comes from the same numbers as its test. The eval metrics still give validation figures (what
the report chooses on) and the slices' means.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lib.evaluate import loaded_ranks
from lib.metrics import per_user_metrics

SEED_OVERRIDE = "train.seed"  # the override that makes a run another seed of the same model
VAL_KEY = "val/ndcg@10"  # what the report chooses on
# the cold pool a list can know: its current name (issue 29), then its pre-#29 name (known at T_test)
KNOWABLE_POOLS = ("knowable", "known_at_test")


@dataclass
class ReportInputs:
    runs: dict[str, dict]  # run -> run.json
    evals: dict[str, dict]  # run -> metrics/eval/<run>.json
    per_user: dict[str, pd.DataFrame]  # run -> results/<run>/ranks.parquet
    train: dict[str, dict] = field(default_factory=dict)  # run -> metrics/train/<run>.json
    tokenizers: dict[str, dict] = field(default_factory=dict)  # tokenizer -> metrics/tokenizers/<name>.json
    splits: dict[str, dict] = field(default_factory=dict)  # protocol -> metrics/split/<protocol>.json
    decoding: dict | None = None  # metrics/decoding.json (stage `decoding`), when given
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)  # run -> validation NDCG@10 (step, value)
    code_usage: dict[str, pd.DataFrame] = field(default_factory=dict)  # tokenizer -> (level, rank, items)


@dataclass
class Models:
    """Models (runs collapsed over seeds): attributes, means, per-user values."""
    runs: dict[str, dict]  # model -> its named member's run.json, without the seed override
    evals: dict[str, dict]  # model -> eval metrics, mean over its seeds
    members: dict[str, list[str]] = field(default_factory=dict)  # model -> its runs, by name
    seeds: dict[str, list] = field(default_factory=dict)  # model -> its members' run.json seeds
    train: dict[str, dict] = field(default_factory=dict)  # model -> training metrics, mean over seeds
    # model -> per test user (stored order): user, cold (knowable cold target), unreachable, the metrics at
    # the report's cut-offs and control/<m> (random cold-slot control of the knowable pool), mean over seeds
    values: dict[str, pd.DataFrame] = field(default_factory=dict)
    per_seed: dict[str, list[dict]] = field(default_factory=dict)  # model -> per seed: value key -> mean
    pool: dict[str, str | None] = field(default_factory=dict)  # model -> its knowable pool's name in eval keys

    def n_seeds(self, model: str) -> int:
        return len(self.members.get(model, [model]))

    def mean_sd(self, model: str, key: str) -> tuple[float | None, float | None]:
        """Mean and sample sd over seeds of a value key (`value_of`); sd None with one seed."""
        vals = [s[key] for s in self.per_seed[model] if s.get(key) is not None]
        if not vals:
            return None, None
        return float(np.mean(vals)), (float(np.std(vals, ddof=1)) if len(vals) > 1 else None)


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


def knowable_pool(columns) -> str | None:
    """The knowable cold pool a per-user file has columns for (`pool_<P>`), None if none."""
    return next((p for p in KNOWABLE_POOLS if f"pool_{p}" in columns), None)


def test_rows(frame: pd.DataFrame, ks) -> pd.DataFrame:
    """One run's per-user file -> its test users: user, cold, unreachable, metrics at `ks`, control/<m>.

    cold = the target is in the knowable cold pool (pool_<P>); without such a column, a reachable target
    without a training interaction (target_cold).
    """
    t = frame[frame["split"] == "test"].reset_index(drop=True)
    pool = knowable_pool(t.columns)
    unreachable = t["target_unreachable"].to_numpy(bool) if "target_unreachable" in t else np.zeros(len(t), bool)
    cold = t[f"pool_{pool}"].to_numpy(bool) if pool else t["target_cold"].to_numpy(bool) & ~unreachable
    out = pd.DataFrame({"user": t["user"].to_numpy(), "cold": cold, "unreachable": unreachable})
    metrics = per_user_metrics(loaded_ranks(t["rank"].to_numpy()), ks)
    controls = {f"control/{c.split('/', 1)[1]}": t[c].to_numpy(np.float64) for c in t.columns
                if pool and c.startswith(f"control_{pool}/")}
    return pd.concat([out, metrics, pd.DataFrame(controls)], axis=1)


def value_of(values: pd.DataFrame, key: str) -> tuple[np.ndarray, np.ndarray]:
    """A value key -> (per-user values (U,), mask of the users it is measured on (U,)).

    `test/<m>`: all test users; `cold/<m>`: knowable cold targets; `control/<m>`: the random cold-slot
    control on the knowable cold targets.
    """
    where, metric = key.split("/", 1)
    mask = np.ones(len(values), bool) if where == "test" else values["cold"].to_numpy(bool)
    col = f"control/{metric}" if where == "control" else metric
    if col not in values:
        return np.zeros(len(values)), np.zeros(len(values), bool)
    return values[col].to_numpy(np.float64), mask


SEED_KEYS = ("test/{m}", "cold/{m}", "control/{m}")


def collapse_seeds(inp: ReportInputs, metrics: list[str]) -> Models:
    """Runs -> models: eval/train means over seeds, per-user values averaged over seeds, per-seed means of
    `metrics` (e.g. ["ndcg@10", "hr@10"]) on all test users, knowable cold targets and their control."""
    ks = sorted({int(m.split("@")[1]) for m in metrics})
    out = Models(runs={}, evals={})
    for name, members in group_seeds(inp.runs).items():
        info = dict(inp.runs[name])
        out.runs[name] = info | {"overrides": _without_seed(info.get("overrides"))}
        out.evals[name] = mean_sd([inp.evals[r] for r in members])[0]
        out.members[name] = members
        out.seeds[name] = [inp.runs[r].get("seed") for r in members]
        trained = [inp.train[r] for r in members if r in inp.train]
        if trained:
            out.train[name] = mean_sd(trained)[0]
        rows = {r: test_rows(inp.per_user[r], ks) for r in members}
        first = rows[name]
        for r in members[1:]:
            if not np.array_equal(rows[r]["user"].to_numpy(), first["user"].to_numpy()):
                raise ValueError(f"run {r!r}: its test users differ from those of {name!r}, a seed of the same model")
        numeric = [c for c in first.columns if c not in ("user", "cold", "unreachable")]
        out.values[name] = first[["user", "cold", "unreachable"]].assign(
            **{c: sum(rows[r][c].to_numpy(np.float64) for r in members) / len(members) for c in numeric})
        out.per_seed[name] = []
        for r in members:
            seed = {}
            for m in metrics:
                for key in (k.format(m=m) for k in SEED_KEYS):
                    v, mask = value_of(rows[r], key)
                    seed[key] = float(v[mask].mean()) if mask.any() else None
            out.per_seed[name].append(seed)
        out.pool[name] = knowable_pool(inp.per_user[name].columns)
    return out
