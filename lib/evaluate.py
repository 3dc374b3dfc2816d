"""Model-agnostic evaluation of one run: ranked lists + ground truth -> metrics and per-user ranks.

The evaluator reads only the recommendation contract (per user a ranked item list, best
first) and never a model, so every run is scored by the same code under the same
seen-item policy (`filter_seen`, applied here, not by the models).

Catalogue (lib/catalogue.py): a list may hold only the items known at its cut-off; the evaluator
removes any other item before cutting at K (the same rule for every model, like seen items) and counts
them (`off_catalogue_items`), and a target outside the catalogue (`target_unreachable`) is a miss for
every model.

Repeat consumption (Yelp): a target the user has consumed before is a legitimate re-visit, and
`filter_seen` makes it a miss for every model. `unfiltered` also scores the same lists without the
filter (`<split>/unfiltered/...`, with the repeat and new targets apart, and a per-user `rank_unfiltered`).

Outputs per run: flat means (`test/ndcg@10`, `test/cold_target/hr@10`, `val/...`, coverage) and
the per-user rank of the target (validation and test users, with the slice flags), a small
table committed to git from which the report recomputes every per-user metric and paired test
without the lists. Test-set slices: cold (reachable, untrained) vs warm target item, unreachable
target, cold vs warm user, history-length buckets.

Cold-start control: a list's cold slots (ranks holding an item of a cold pool) would reach cold
targets by chance alone: 2 cold slots among 300 cold items give HR@10 ~ 2/300 on cold targets. For
every pool the evaluator reports the expected metrics of the control that fills the same slots with
random pool items the user has not seen (`cold_control`, exact expectations, no sampling), so the
report states lift over chance. The pool (`knowable`: the list's untrained candidates) is in lib/cold.py.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from lib.metrics import PAD, coverage, per_user_metrics, target_ranks, top_k

log = logging.getLogger(__name__)

SPLITS = ("val", "test")
RANK_MISS = 0  # stored rank of a target outside the top max(ks): per-user files hold small ints


@dataclass(frozen=True)
class EvaluateConfig:
    ks: tuple[int, ...] = (5, 10, 20, 50, 100)  # cut-offs K of HR/NDCG/MRR/coverage, increasing
    filter_seen: bool = True  # remove the user's history items from their list before cutting at K
    length_buckets: tuple[int, ...] = (5, 10, 20)  # upper edges of history-length slices: <=5, 6-10, 11-20, >20
    cold_pools: tuple[Literal["knowable"], ...] = ("knowable",)  # lib/cold.py
    control_k: int = 10  # cut-off of the per-user control columns (the report's paired tests), <= max(ks)
    unfiltered: bool = False  # also score the lists without seen-item filtering (re-visits as hits): `*/unfiltered/*`

    def validate(self) -> None:
        for name in ("ks", "length_buckets"):
            v = list(getattr(self, name))
            if any(x < 1 for x in v) or v != sorted(set(v)):
                raise ValueError(f"{name}: must be increasing positive integers, got {v}")
        if not self.ks:
            raise ValueError("ks: must not be empty")
        if max(self.ks) > 32767:
            raise ValueError("ks: at most 32767 (ranks are stored as int16)")
        if not 1 <= self.control_k <= max(self.ks):
            raise ValueError(f"control_k: must be in 1..max(ks) = {max(self.ks)}, got {self.control_k}")
        if len(set(self.cold_pools)) != len(self.cold_pools):
            raise ValueError(f"cold_pools: repeated pool in {list(self.cold_pools)}")
        if self.unfiltered and not self.filter_seen:
            raise ValueError("unfiltered: the main figures are already unfiltered (filter_seen: false); set one")


@dataclass
class RunEvaluation:
    metrics: dict[str, float]  # flat: test/ndcg@10, test/cold_target/hr@10, val/ndcg@10, coverage, ...
    per_user: pd.DataFrame  # (split, user, rank, target_cold, user_cold, history_length, target_unreachable,
    #                         pool and control columns), val rows then test


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


def within(items: list[np.ndarray], candidates: np.ndarray | None) -> tuple[list[np.ndarray], int]:
    """Lists -> the lists with every item outside `candidates` ((N+1,) bool; None = all) removed, order kept,
    and the number of items removed."""
    if candidates is None:
        return items, 0
    kept = [x[candidates[x]] for x in items]
    return kept, int(sum(len(a) - len(b) for a, b in zip(items, kept, strict=True)))


def score(truth: pd.DataFrame, recs: pd.DataFrame, n_items: int, cfg: EvaluateConfig,
          label: str, candidates: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
    """Ground-truth rows (U) + one run's lists -> ((U,) target ranks, inf = not in the top max(ks);
    coverage@k and off_catalogue_items; the (U, max(ks)) lists as scored).

    candidates (N+1,) bool: the list's catalogue; other items are removed before cutting at K.
    """
    items, off = within(align(recs, truth["user"].to_numpy(), n_items, label), candidates)
    if off:
        log.warning("%s: %d recommended items are outside the catalogue known at the list's cut-off; "
                    "removed", label, off)
    top = top_k(items, max(cfg.ks), list(truth["history"]) if cfg.filter_seen else None)  # (U, K_max)
    short = int(np.count_nonzero(top[:, -1] == PAD))
    if short:
        log.warning("%s: %d of %d users have fewer than %d items after seen-item filtering; "
                    "missing positions count as misses", label, short, len(top), max(cfg.ks))
    n_cand = n_items if candidates is None else int(np.count_nonzero(candidates))
    cov = {f"coverage@{k}": coverage(top, k, n_cand) for k in cfg.ks}
    return target_ranks(top, truth["target"].to_numpy()), {**cov, "catalogue_items": n_cand,
                                                            "off_catalogue_items": off}, top


def repeat_targets(truth: pd.DataFrame) -> np.ndarray:
    """(U,) bool: the target is an item of the user's input (a re-visit)."""
    return np.array([bool(np.any(np.asarray(h) == y)) for h, y in zip(truth["history"], truth["target"], strict=True)],
                    dtype=bool)


def stored_ranks(ranks: np.ndarray) -> np.ndarray:
    """(U,) float ranks, inf = miss -> int16 with RANK_MISS for a miss (the per-user file's column)."""
    return np.where(np.isfinite(ranks), ranks, RANK_MISS).astype(np.int16)


def loaded_ranks(stored: np.ndarray) -> np.ndarray:
    """The inverse of `stored_ranks`: (U,) float ranks with inf for a miss, as lib.metrics expects."""
    r = np.asarray(stored, dtype=np.float64)
    return np.where(r == RANK_MISS, np.inf, r)


def slices(per_user: pd.DataFrame, length_buckets) -> dict[str, np.ndarray]:
    """Slice name -> (U,) bool mask: cold/warm target, cold/warm user, history-length buckets.

    per_user: rows with target_cold, user_cold, history_length (ground truth or a per-user file).
    """
    tc, uc = per_user["target_cold"].to_numpy(bool), per_user["user_cold"].to_numpy(bool)
    un = per_user["target_unreachable"].to_numpy(bool) if "target_unreachable" in per_user else np.zeros_like(tc)
    out = {"cold_target": tc, "warm_target": ~tc & ~un, "unreachable_target": un, "cold_user": uc, "warm_user": ~uc}
    h = per_user["history_length"].to_numpy()
    prev = 0  # the split never emits an empty history, so the first bucket is named from 1
    for hi in length_buckets:
        name = f"len_{prev + 1}-{hi}" if hi > prev + 1 else f"len_{hi}"
        out[name] = (h <= hi) if prev == 0 else (h > prev) & (h <= hi)
        prev = hi
    out[f"len_{prev + 1}+"] = h > prev
    return out


def cold_control(top: np.ndarray, histories, targets: np.ndarray, pool: np.ndarray, ks) -> dict[str, np.ndarray]:
    """The random cold-slot control of one list per user, as exact expectations.

    top (U, K) the lists as scored (after seen filtering), pool (N+1,) bool. A user's cold slots are
    the ranks holding a pool item; the control puts in them distinct pool items drawn uniformly from
    the `avail` pool items the user has not seen, so each slot holds a reachable target (a pool item
    outside the history) with probability 1 / avail. Returns per user `reachable` and, for each k,
    `cold_slots@k` and the control's expected `hr@k`, `ndcg@k`, `mrr@k`.
    """
    in_pool = pool[top]  # PAD is in no pool
    seen = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories]
    avail = int(pool.sum()) - np.array([np.count_nonzero(pool[h]) for h in seen], dtype=np.int64)
    reach = pool[targets] & np.array([not np.isin(t, h) for t, h in zip(targets, seen, strict=True)], dtype=bool)
    p = np.where(reach & (avail > 0), 1.0 / np.maximum(avail, 1), 0.0)  # each slot's chance to hold the target
    ranks = np.arange(1, top.shape[1] + 1)
    out: dict[str, np.ndarray] = {"reachable": reach}
    for k in ks:
        m = in_pool[:, :k]
        out[f"cold_slots@{k}"] = m.sum(axis=1)
        out[f"hr@{k}"] = np.minimum(1.0, p * m.sum(axis=1))  # disjoint events: at most one slot holds it
        out[f"ndcg@{k}"] = p * (m / np.log2(ranks[:k] + 1)).sum(axis=1)
        out[f"mrr@{k}"] = p * (m / ranks[:k]).sum(axis=1)
    return out


def _means(values: pd.DataFrame, prefix: str) -> dict[str, float]:
    return {f"{prefix}/{c}": round(float(values[c].mean()), 6) for c in values.columns}


def summarize(split: str, ranks: np.ndarray, ks, cov: dict[str, float] | None = None,
              masks: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """(U,) ranks -> flat `split/metric` means, coverage, and `split/slice/metric` per mask."""
    values = per_user_metrics(ranks, ks)
    out: dict[str, float] = {f"{split}/users": len(values), **_means(values, split)}
    out.update({f"{split}/{k}": round(v, 6) for k, v in (cov or {}).items()})
    for name, mask in (masks or {}).items():
        out[f"{split}/{name}/users"] = int(mask.sum())
        if mask.any():  # an empty slice has no mean (and NaN is not valid JSON)
            out.update(_means(values[mask], f"{split}/{name}"))
    return out


def control_summary(split: str, ranks: np.ndarray, control: dict[str, np.ndarray], pool: str, n_pool: int,
                    ks) -> dict[str, float]:
    """Flat `split/cold_pool/<pool>/...`: pool size, reachable targets, mean cold slots per list, and on the
    reachable targets the model's metrics next to the control's expected ones."""
    reach = control["reachable"]
    pre = f"{split}/cold_pool/{pool}"
    out: dict[str, float] = {f"{pre}/items": n_pool, f"{pre}/targets": int(reach.sum())}
    out.update({f"{pre}/cold_slots@{k}": round(float(control[f"cold_slots@{k}"].mean()), 6) for k in ks})
    if reach.any():
        out.update(_means(per_user_metrics(ranks[reach], ks), f"{pre}/model"))
        out.update({f"{pre}/control/{m}@{k}": round(float(control[f"{m}@{k}"][reach].mean()), 6)
                    for m in ("hr", "ndcg", "mrr") for k in ks})
    return out


def evaluate_run(truth: dict[str, pd.DataFrame], recs: dict[str, pd.DataFrame], items: pd.DataFrame,
                 cfg: EvaluateConfig, label: str = "run", pools: dict[str, dict[str, np.ndarray]] | None = None,
                 catalogues: dict[str, np.ndarray] | None = None) -> RunEvaluation:
    """Score one run on val and test.

    truth: split ("val", "test") -> ground-truth rows; recs: split -> rows (user, items);
    items: the item table (catalogue size); label names the run in error messages; pools:
    cold pool name -> split -> (N+1,) membership (lib/cold.py), each scored against its random control;
    catalogues: split -> (N+1,) bool candidates of its lists (lib/catalogue.py; None = every item).
    """
    cfg.validate()  # from_dict validates too; this guards configs built directly in code
    n_items = catalogue_size(items)
    empty = [s for s in SPLITS if len(truth[s]) == 0]
    if empty:
        raise ValueError(f"no ground-truth users in split(s) {empty}")
    repeats = {split: repeat_targets(t) for split, t in truth.items()}
    if cfg.filter_seen:
        for split, rep in repeats.items():
            if rep.any():
                log.warning("%s: %d of %d targets are in their user's history; filter_seen makes them "
                            "unreachable for every model%s", split, rep.sum(), len(rep),
                            "" if cfg.unfiltered else " (evaluate.unfiltered scores them too)")
    flat: dict[str, float] = {}
    frames = []
    for split in SPLITS:
        t = truth[split]
        cand = None if catalogues is None else np.asarray(catalogues[split], dtype=bool)
        if cand is not None and len(cand) != n_items + 1:
            raise ValueError(f"{split} catalogue: {len(cand)} flags for a catalogue of {n_items} items (+ PAD)")
        ranks, cov, top = score(t, recs[split], n_items, cfg, f"{label} ({split} recommendations)", cand)
        flat.update(summarize(split, ranks, cfg.ks, cov, slices(t, cfg.length_buckets) if split == "test" else None))
        frame = pd.DataFrame({
            "split": split, "user": t["user"].to_numpy(np.int32), "rank": stored_ranks(ranks),
            "target_cold": t["target_cold"].to_numpy(bool), "user_cold": t["user_cold"].to_numpy(bool),
            "history_length": np.minimum(t["history_length"].to_numpy(), 32767).astype(np.int16),
            "target_unreachable": (t["target_unreachable"].to_numpy(bool) if "target_unreachable" in t
                                   else np.zeros(len(t), bool))})
        for name, by_split in (pools or {}).items():
            pool = by_split[split]
            if len(pool) != n_items + 1:
                raise ValueError(f"cold pool {name!r}: {len(pool)} flags for a catalogue of {n_items} items (+ PAD)")
            ctl = cold_control(top, list(t["history"]), t["target"].to_numpy(np.int64), pool,
                               sorted({*cfg.ks, cfg.control_k}))
            flat.update(control_summary(split, ranks, ctl, name, int(pool.sum()), cfg.ks))
            k = cfg.control_k  # per user, for the report's paired model-vs-control tests
            frame[f"pool_{name}"] = ctl["reachable"]
            frame[f"control_{name}/hr@{k}"] = ctl[f"hr@{k}"].astype(np.float32)
            frame[f"control_{name}/ndcg@{k}"] = ctl[f"ndcg@{k}"].astype(np.float32)
        if cfg.unfiltered:  # the same lists, seen items kept: re-visits can be hit
            rep = repeats[split]
            raw, raw_cov, _ = score(t, recs[split], n_items, replace(cfg, filter_seen=False),
                                    f"{label} ({split} recommendations, unfiltered)", cand)
            flat.update(summarize(f"{split}/unfiltered", raw, cfg.ks, raw_cov,
                                  {"repeat_target": rep, "new_target": ~rep}))
            frame["target_repeat"] = rep
            frame["rank_unfiltered"] = stored_ranks(raw)
        frames.append(frame)
    log.info("%s: test ndcg@10=%.4f hr@10=%.4f", label, flat.get("test/ndcg@10", float("nan")),
             flat.get("test/hr@10", float("nan")))
    per_user = pd.concat(frames, ignore_index=True)
    per_user["split"] = per_user["split"].astype(pd.CategoricalDtype(list(SPLITS)))  # small in the committed file
    return RunEvaluation(flat, per_user)
