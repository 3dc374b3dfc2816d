"""Model-agnostic evaluation: ranked lists + ground truth -> metrics, slices, paired tests, report.

The evaluator reads only the recommendation contract (per user a ranked item list, best
first) and never a model, so every model is scored by the same code under the same
seen-item policy (`filter_seen`, applied here, not by the models).

Test-set slices: cold vs warm target item, cold vs warm user, history-length buckets.
Each model is compared with `baseline` on the same users: a percentile bootstrap CI of the
mean per-user difference plus the Wilcoxon signed-rank test. A difference is called
significant only when both agree (CI excludes 0 and p < alpha): the bootstrap speaks about
the mean, Wilcoxon about the paired distribution, and HR's many zero differences make
either alone easy to over-read.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import wilcoxon

from lib.metrics import METRICS, PAD, coverage, per_user_metrics, target_ranks, top_k
from lib.plots import cold_warm_figure, metrics_vs_k_figure

log = logging.getLogger(__name__)

SPLITS = ("val", "test")
_METRIC = re.compile(r"^(hr|ndcg|mrr)@(\d+)$")


@dataclass(frozen=True)
class EvaluateConfig:
    ks: tuple[int, ...] = (5, 10, 20, 50, 100)  # cut-offs K of HR/NDCG/MRR/coverage, increasing
    filter_seen: bool = True  # remove the user's history items from their list before cutting at K
    baseline: str = "sasrec_id"  # the model every other one is compared with
    significance_metrics: tuple[str, ...] = ("ndcg@10", "hr@10")  # per-user metrics tested vs baseline
    n_bootstrap: int = 1000  # user resamples for the CI of the mean difference
    alpha: float = 0.05  # CI level is 1 - alpha; Wilcoxon threshold
    seed: int = 0  # bootstrap resampling (the same resamples for every model: common random numbers)
    length_buckets: tuple[int, ...] = (5, 10, 20)  # upper edges of history-length slices: <=5, 6-10, 11-20, >20

    def validate(self) -> None:
        for name in ("ks", "length_buckets"):
            v = list(getattr(self, name))
            if any(x < 1 for x in v) or v != sorted(set(v)):
                raise ValueError(f"{name}: must be increasing positive integers, got {v}")
        if not self.ks:
            raise ValueError("ks: must not be empty")
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap: must be >= 1, got {self.n_bootstrap}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha: must be in (0, 1), got {self.alpha}")
        for m in self.significance_metrics:
            match = _METRIC.match(m)
            if not match or int(match[2]) not in self.ks:
                raise ValueError(f"significance_metrics: {m!r} is not hr|ndcg|mrr@K with K in ks {list(self.ks)}")


@dataclass
class ModelResult:
    metrics: dict[str, float]  # flat: test/ndcg@10, test/cold_target/hr@10, val/ndcg@10, ...
    per_user: pd.DataFrame  # test users x (user, hr@k..., ndcg@k..., mrr@k...), ground-truth row order


@dataclass
class Evaluation:
    models: dict[str, ModelResult]
    comparisons: dict[str, dict[str, dict]]  # model -> metric key -> paired test vs the baseline
    leaderboard: dict  # JSON: baseline, alpha, models {model: metrics}, comparisons
    report: str  # markdown leaderboard
    plot_data: dict[str, pd.DataFrame]  # name -> long table for `dvc plots`
    figures: dict  # name -> matplotlib Figure, same names as plot_data


def catalogue_size(items: pd.DataFrame) -> int:
    """Item table with column `item` = 1..N (row-aligned contract) -> N."""
    ids = items["item"].to_numpy()
    if not np.array_equal(np.sort(ids), np.arange(1, len(ids) + 1)):
        raise ValueError("item table: column `item` must hold exactly the ids 1..N")
    return len(ids)


def align(recs: pd.DataFrame, users: np.ndarray, n_items: int, label: str) -> list[np.ndarray]:
    """Rows (user, items) -> item arrays in the order of `users` (U,); errors name `label`.

    A ground-truth user without a row, a user with two rows, or an invalid list is an error:
    silently scoring it as a miss would hide a broken model run.
    """
    missing_cols = sorted({"user", "items"} - set(recs.columns))
    if missing_cols:
        raise ValueError(f"{label}: missing column(s) {missing_cols}")
    index = pd.Index(recs["user"].to_numpy())
    dup = index[index.duplicated()].unique()
    if len(dup):
        raise ValueError(f"{label}: {len(dup)} user(s) have more than one row, e.g. {dup[:5].tolist()}")
    pos = index.get_indexer(users)
    if (pos < 0).any():
        miss = users[pos < 0]
        raise ValueError(f"{label}: {len(miss)} of {len(users)} ground-truth users have no row, "
                         f"e.g. {miss[:5].tolist()}")
    lists = recs["items"].to_numpy()[pos]
    nulls = [int(u) for u, x in zip(users, lists, strict=True) if x is None]
    if nulls:
        raise ValueError(f"{label}: null item list for user(s) {nulls[:5]}")
    items = [np.asarray(x, dtype=np.int64) for x in lists]
    flat = np.concatenate(items) if items else np.empty(0, np.int64)
    bad = flat[(flat < 1) | (flat > n_items)]
    if bad.size:
        raise ValueError(f"{label}: item ids must be in 1..{n_items}, found {np.unique(bad)[:5].tolist()}")
    dups = [int(u) for u, x in zip(users, items, strict=True) if len(np.unique(x)) != len(x)]
    if dups:
        raise ValueError(f"{label}: repeated items in the lists of user(s) {dups[:5]}")
    return items


def score(truth: pd.DataFrame, recs: pd.DataFrame, n_items: int, cfg: EvaluateConfig,
          label: str) -> tuple[pd.DataFrame, dict[str, float]]:
    """Ground-truth rows (U) + one model's lists -> (per-user metrics (U rows), coverage@k)."""
    items = align(recs, truth["user"].to_numpy(), n_items, label)
    top = top_k(items, max(cfg.ks), list(truth["history"]) if cfg.filter_seen else None)  # (U, K_max)
    short = int(np.count_nonzero(top[:, -1] == PAD))
    if short:
        log.warning("%s: %d of %d users have fewer than %d items after seen-item filtering; "
                    "missing positions count as misses", label, short, len(top), max(cfg.ks))
    per_user = per_user_metrics(target_ranks(top, truth["target"].to_numpy()), cfg.ks)
    per_user.insert(0, "user", truth["user"].to_numpy())
    return per_user, {f"coverage@{k}": coverage(top, k, n_items) for k in cfg.ks}


def slices(truth: pd.DataFrame, cfg: EvaluateConfig) -> dict[str, np.ndarray]:
    """Slice name -> (U,) bool mask: cold/warm target, cold/warm user, history-length buckets."""
    tc, uc = truth["target_cold"].to_numpy(bool), truth["user_cold"].to_numpy(bool)
    out = {"cold_target": tc, "warm_target": ~tc, "cold_user": uc, "warm_user": ~uc}
    h = truth["history_length"].to_numpy()
    prev = 0  # the split never emits an empty history, so the first bucket is named from 1
    for hi in cfg.length_buckets:
        name = f"len_{prev + 1}-{hi}" if hi > prev + 1 else f"len_{hi}"
        out[name] = (h <= hi) if prev == 0 else (h > prev) & (h <= hi)
        prev = hi
    out[f"len_{prev + 1}+"] = h > prev
    return out


def _means(per_user: pd.DataFrame, prefix: str) -> dict[str, float]:
    return {f"{prefix}/{c}": round(float(per_user[c].mean()), 6) for c in per_user.columns if c != "user"}


def summarize(split: str, per_user: pd.DataFrame, cov: dict[str, float],
              masks: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Per-user metrics -> flat `split/metric` means, coverage, and `split/slice/metric` per mask."""
    out: dict[str, float] = {f"{split}/users": len(per_user), **_means(per_user, split)}
    out.update({f"{split}/{k}": round(v, 6) for k, v in cov.items()})
    for name, mask in (masks or {}).items():
        out[f"{split}/{name}/users"] = int(mask.sum())
        if mask.any():  # an empty slice has no mean (and NaN is not valid JSON)
            out.update(_means(per_user[mask], f"{split}/{name}"))
    return out


def paired_test(base: np.ndarray, other: np.ndarray, cfg: EvaluateConfig) -> dict:
    """Per-user values of the baseline and a model on the same users (U,) -> difference statistics."""
    d = other - base  # (U,)
    rng = np.random.default_rng(cfg.seed)
    boot = np.empty(cfg.n_bootstrap)
    for start in range(0, cfg.n_bootstrap, 100):  # chunks bound the (chunk, U) index matrix
        stop = min(start + 100, cfg.n_bootstrap)
        boot[start:stop] = d[rng.integers(0, len(d), size=(stop - start, len(d)))].mean(axis=1)
    lo, hi = np.quantile(boot, [cfg.alpha / 2, 1 - cfg.alpha / 2])
    # wilcoxon rejects all-zero differences; identical rankings are simply "no evidence"
    p = float(wilcoxon(d).pvalue) if np.any(d) else 1.0
    return {"users": len(d), "baseline": round(float(base.mean()), 6), "model": round(float(other.mean()), 6),
            "diff": round(float(d.mean()), 6), "ci_low": round(float(lo), 6), "ci_high": round(float(hi), 6),
            "p_value": p, "significant": bool((lo > 0 or hi < 0) and p < cfg.alpha)}


def compare(per_user: dict[str, pd.DataFrame], truth: pd.DataFrame,
            cfg: EvaluateConfig) -> dict[str, dict[str, dict]]:
    """Test per-user metrics by model -> {model: {test/[cold_target/]metric: paired_test}} vs baseline."""
    if cfg.baseline not in per_user:
        log.warning("baseline %r is not among the evaluated models %s: no paired comparisons",
                    cfg.baseline, list(per_user))
        return {}
    masks = {"test": np.ones(len(truth), bool), "test/cold_target": truth["target_cold"].to_numpy(bool)}
    base = per_user[cfg.baseline]
    out: dict[str, dict[str, dict]] = {}
    for model, frame in per_user.items():
        if model == cfg.baseline:
            continue
        out[model] = {}
        for prefix, mask in masks.items():
            if not mask.any():
                log.info("no users in %s: comparison skipped", prefix)
                continue
            for m in cfg.significance_metrics:
                res = paired_test(base[m].to_numpy()[mask], frame[m].to_numpy()[mask], cfg)
                out[model][f"{prefix}/{m}"] = res
                log.info("%s vs %s on %s/%s: diff %+.4f [%.4f, %.4f] p=%.3g%s", model, cfg.baseline, prefix, m,
                         res["diff"], res["ci_low"], res["ci_high"], res["p_value"],
                         " (significant)" if res["significant"] else "")
    return out


def metric_table(metrics: dict[str, dict[str, float]], comparisons: dict[str, dict[str, dict]],
                 cols: list[str], baseline: str) -> list[str]:
    """Markdown table rows: one per model, a column per flat metric key; best per column in bold,
    † where the paired test vs the baseline is significant; – where the model lacks the key."""
    head = [("cold " if "cold_target/" in c else "warm " if "warm_target/" in c else "")
            + c.rsplit("/", 1)[1].upper() for c in cols]
    best = {c: max((v[c] for v in metrics.values() if c in v), default=None) for c in cols}
    lines = ["| model | " + " | ".join(head) + " |", "|---|" + "---:|" * len(cols)]
    for model, vals in metrics.items():
        cells = []
        for c in cols:
            if c not in vals:
                cells.append("–")
                continue
            cell = f"{vals[c]:.4f}"
            cell = f"**{cell}**" if vals[c] == best[c] else cell
            cells.append(cell + ("†" if comparisons.get(model, {}).get(c, {}).get("significant") else ""))
        name = f"{model} (baseline)" if model == baseline else model
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def leaderboard_columns(cfg: EvaluateConfig) -> list[str]:
    """Every test metric at every K, then the cold-target slice of the tested metrics."""
    return ([f"test/{m}@{k}" for m in METRICS for k in cfg.ks]
            + [f"test/cold_target/{m}" for m in cfg.significance_metrics])


def significance_note(cfg: EvaluateConfig) -> str:
    tested = ", ".join(m.upper() for m in cfg.significance_metrics)
    return (f"† significantly different from the baseline `{cfg.baseline}` on the same users: the "
            f"{1 - cfg.alpha:.0%} bootstrap CI ({cfg.n_bootstrap} resamples) of the mean per-user difference "
            f"excludes 0 and the Wilcoxon signed-rank p < {cfg.alpha}. Tested: {tested} on all test users "
            "and on the cold-target slice; other cells are not tested.")


def report(metrics: dict[str, dict[str, float]], comparisons: dict[str, dict[str, dict]],
           cfg: EvaluateConfig) -> str:
    """Markdown leaderboard: one row per model, test metrics, † where significantly != baseline."""
    lines = metric_table(metrics, comparisons, leaderboard_columns(cfg), cfg.baseline)
    users = next(iter(metrics.values()), {}).get("test/users", 0)
    out = [
        "# Leaderboard (test)", "",
        f"{users} test users, one target each; full-catalogue ranking; "
        f"seen items {'removed' if cfg.filter_seen else 'kept'} before cutting at K. Best per column in bold.",
        "", *lines, "",
    ]
    if comparisons:
        out += [
            significance_note(cfg), "",
            f"## Paired comparisons vs `{cfg.baseline}`", "",
            "| model | metric | baseline | model | diff | CI | p | significant |",
            "|---|---|---:|---:|---:|---|---:|---|",
        ]
        for model, tests in comparisons.items():
            for key, r in tests.items():
                out.append(f"| {model} | {key} | {r['baseline']:.4f} | {r['model']:.4f} | {r['diff']:+.4f} | "
                           f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {r['p_value']:.3g} | "
                           f"{'yes' if r['significant'] else 'no'} |")
    else:
        out.append(f"No significance tests: the baseline `{cfg.baseline}` was not evaluated.")
    return "\n".join(out) + "\n"


def plot_tables(metrics: dict[str, dict[str, float]], cfg: EvaluateConfig) -> dict[str, pd.DataFrame]:
    """Long tables for `dvc plots`: metrics_vs_k (model, k, metric, value), cold_warm (model, slice, ...)."""
    vs_k = [(model, k, m, v[f"test/{m}@{k}"]) for model, v in metrics.items() for m in METRICS for k in cfg.ks]
    cw = [(model, s, m, v[key]) for model, v in metrics.items()
          for s, prefix in (("all", "test"), ("warm_target", "test/warm_target"), ("cold_target", "test/cold_target"))
          for m in cfg.significance_metrics if (key := f"{prefix}/{m}") in v]
    return {"metrics_vs_k": pd.DataFrame(vs_k, columns=["model", "k", "metric", "value"]),
            "cold_warm": pd.DataFrame(cw, columns=["model", "slice", "metric", "value"])}


def _label(model: str, split: str, sources: dict[str, dict[str, str]] | None) -> str:
    return f"model {model!r} ({sources[model][split] if sources else split + ' recommendations'})"


def evaluate(truth: dict[str, pd.DataFrame], recs: dict[str, dict[str, pd.DataFrame]], items: pd.DataFrame,
             cfg: EvaluateConfig, sources: dict[str, dict[str, str]] | None = None) -> Evaluation:
    """Score every model on val and test, compare with the baseline, build the report and plots.

    truth: split ("val", "test") -> ground-truth rows; recs: model -> split -> rows (user, items);
    items: the item table (catalogue size); sources: model -> split -> file name, for error messages.
    """
    cfg.validate()  # from_dict validates too; this guards configs built directly in code
    n_items = catalogue_size(items)
    empty = [s for s in SPLITS if len(truth[s]) == 0]
    if empty:
        raise ValueError(f"no ground-truth users in split(s) {empty}")
    if cfg.filter_seen:
        for split, t in truth.items():
            n = sum(bool(np.any(np.asarray(h) == y)) for h, y in zip(t["history"], t["target"], strict=True))
            if n:
                log.warning("%s: %d of %d targets are in their user's history; filter_seen makes them "
                         "unreachable for every model", split, n, len(t))
    masks = slices(truth["test"], cfg)
    models: dict[str, ModelResult] = {}
    for model, by_split in recs.items():
        scored = {s: score(truth[s], by_split[s], n_items, cfg, _label(model, s, sources)) for s in SPLITS}
        flat = {**summarize("test", *scored["test"], masks), **summarize("val", *scored["val"])}
        models[model] = ModelResult(flat, scored["test"][0])
        log.info("%s: test %s", model, ", ".join(f"{m}={flat[f'test/{m}']:.4f}" for m in cfg.significance_metrics))
    metrics = {m: r.metrics for m, r in models.items()}
    comparisons = compare({m: r.per_user for m, r in models.items()}, truth["test"], cfg)
    tables = plot_tables(metrics, cfg)
    return Evaluation(
        models=models, comparisons=comparisons,
        leaderboard={"baseline": cfg.baseline, "alpha": cfg.alpha, "models": metrics, "comparisons": comparisons},
        report=report(metrics, comparisons, cfg), plot_data=tables,
        figures={"metrics_vs_k": metrics_vs_k_figure(tables["metrics_vs_k"]),
                 "cold_warm": cold_warm_figure(tables["cold_warm"])},
    )
