"""Train/validation/test splits for next-item prediction.

`global_temporal` follows Time to Split (Gusak et al., RecSys 2025): one global cut-off
T_test = a quantile of all timestamps; users whose last interaction is after it are test
users, their last interaction the target and everything earlier the input. The same rule
applied to the part at or before T_test gives T_val and the validation users. Nothing a
model is fit on lies after the time of any target it is evaluated on.

`leave_one_out` is the protocol of SASRec/TIGER/LETTER/RPG: per user, the last item is
the test target and the second-to-last the validation target. It leaks the future across
users (a test target of one user may predate another user's training items).

Input frame: (user, item, timestamp) sorted chronologically per user (preprocess output), ties in
raw file order. Beam has day resolution and its raw file is grouped by item, so that order is not
the user's: `tie_break: random` reorders each user's same-timestamp interactions by a seeded
shuffle before splitting, so neither the choice of target nor the input order follows it.
Evaluation rows: user, history (list of items, oldest first), target, target_timestamp,
history_length, target_unreachable, target_cold, user_cold. Unreachable = the target is not in the
catalogue known at its list's cut-off (lib/catalogue.py: T_val for validation, T_test for test; the
whole catalogue under leave-one-out): a miss for every model. Cold = a reachable target without an
interaction in the data the evaluated model is fit on; a cold user has no such interaction either.
The default tie order is random (seeded): in the raw file order a same-day target is always the day's
highest item id, and ids follow product age.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from lib.catalogue import catalogue_table, check, mask

EVAL_COLUMNS = ["user", "history", "target", "target_timestamp", "history_length", "target_unreachable",
                "target_cold", "user_cold"]


@dataclass(frozen=True)
class SplitConfig:
    type: Literal["global_temporal", "leave_one_out"] = "global_temporal"  # protocol
    quantile: float = 0.9  # global_temporal: cut-off quantile of the timestamps
    validation: Literal["by_time"] = "by_time"  # global_temporal: how validation is cut from training
    retrain_on_validation: bool = False  # final model trains on train+validation period
    tie_break: Literal["file_order", "random"] = "random"  # order of a user's same-timestamp interactions
    tie_seed: int = 0  # tie_break random: the shuffle's seed
    core_k: int = 5  # the data's k-core (preprocess.min_item_interactions): diagnostics of residual survivorship

    def validate(self) -> None:
        if not 0.0 < self.quantile < 1.0:
            raise ValueError(f"quantile: must be in (0, 1), got {self.quantile}")
        if self.core_k < 1:
            raise ValueError(f"core_k: must be >= 1, got {self.core_k}")


@dataclass
class Split:
    train: pd.DataFrame  # interactions the model is fit on (early stopping on `val`)
    train_full: pd.DataFrame  # train + the validation period (retrain_on_validation)
    val: pd.DataFrame  # evaluation rows, EVAL_COLUMNS
    test: pd.DataFrame  # evaluation rows, EVAL_COLUMNS
    info: dict  # cut-offs and counts: data/split/<protocol>/split.json and metrics/split/<protocol>.json
    catalogue: pd.DataFrame  # lib/catalogue.py: item, first_seen, known_val, known_test
    # protocol diagnostics (tie order, same-day and repeat targets): metrics only, so that adding one
    # leaves the split directory, a dependency of every run, byte-identical
    stats: dict = field(default_factory=dict)


def shuffle_ties(inter: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Reorder each user's same-timestamp rows by a seeded random key; users and times keep their order."""
    u, t = inter["user"].to_numpy(), inter["timestamp"].to_numpy()
    if len(u) > 1 and not np.all((u[1:] > u[:-1]) | ((u[1:] == u[:-1]) & (t[1:] >= t[:-1]))):
        raise ValueError("interactions must be sorted by user, then timestamp")
    key = np.random.default_rng(seed).random(len(inter))
    return inter.iloc[np.lexsort((key, t, u))].reset_index(drop=True)


def _quantile_time(ts: pd.Series, q: float) -> int:
    # numpy's default (linear) quantile; timestamps are days, so it lands on a real one
    return int(np.quantile(ts.to_numpy(), q))


def _at_least_two(df: pd.DataFrame) -> pd.DataFrame:
    n = df.groupby("user")["item"].transform("size")
    return df[n >= 2].reset_index(drop=True)


def _eval_rows(df: pd.DataFrame, is_target: np.ndarray) -> pd.DataFrame:
    """Rows of `df` marked as targets -> evaluation rows with the user's earlier items as history.

    `df` is chronological per user and every target is its user's last row in `df`.
    """
    pos = df.groupby("user").cumcount().to_numpy()
    users = df["user"].to_numpy()
    items = df["item"].to_numpy()
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    start_of_row = np.repeat(starts, np.diff(np.r_[starts, len(df)]))
    idx = np.flatnonzero(is_target)
    rows = pd.DataFrame(
        {
            "user": users[idx],
            "history": [items[start_of_row[i]:i].tolist() for i in idx],
            "target": items[idx],
            "target_timestamp": df["timestamp"].to_numpy()[idx],
            "history_length": pos[idx],
        }
    )
    prev = np.maximum(idx - 1, 0)  # the history's latest row (a target with history_length > 0 has one)
    rows["same_day"] = df["timestamp"].to_numpy()[prev] == rows["target_timestamp"].to_numpy()
    return rows[rows["history_length"] > 0].reset_index(drop=True)


def _holdout_after(df: pd.DataFrame, cutoff: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Users whose last interaction is after `cutoff` -> eval rows; rest = at/before cutoff, >= 2 per user."""
    last = np.r_[df["user"].to_numpy()[1:] != df["user"].to_numpy()[:-1], True]
    rows = _eval_rows(df, last & (df["timestamp"].to_numpy() > cutoff))
    rest = _at_least_two(df[df["timestamp"] <= cutoff])
    return rows, rest


def _flag_cold(rows: pd.DataFrame, fit: pd.DataFrame, known: np.ndarray) -> pd.DataFrame:
    """known (N+1,) bool: the list's catalogue. Cold = reachable and not in the fit data."""
    rows = rows.copy()
    rows["target_unreachable"] = ~known[rows["target"].to_numpy()]
    rows["target_cold"] = ~rows["target"].isin(fit["item"].unique()) & ~rows["target_unreachable"]
    rows["user_cold"] = ~rows["user"].isin(fit["user"].unique())
    return rows[EVAL_COLUMNS]


def _same_day(val: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Share of targets on the same timestamp (day) as the latest item of their input: their place in
    the sequence is decided by the tie order alone."""
    return {f"{n}_same_day_target_fraction": round(float(r["same_day"].mean()), 4) if len(r) else 0.0
            for n, r in (("val", val), ("test", test))}


def global_temporal(inter: pd.DataFrame, cfg: SplitConfig, n_items: int) -> Split:
    t_test = _quantile_time(inter["timestamp"], cfg.quantile)
    test, part = _holdout_after(inter, t_test)
    t_val = _quantile_time(part["timestamp"], cfg.quantile)
    val, train = _holdout_after(part, t_val)
    final_fit = part if cfg.retrain_on_validation else train
    info = {"t_test": t_test, "t_val": t_val, "training_part_interactions": len(part),
            "training_part_users": int(part["user"].nunique())}
    cat = catalogue_table(inter, n_items, t_val, t_test)  # every interaction counts, not only the kept users'
    return Split(train, part, _flag_cold(val, train, mask(cat, "known_val")),
                 _flag_cold(test, final_fit, mask(cat, "known_test")), info, cat, _same_day(val, test))


def leave_one_out(inter: pd.DataFrame, cfg: SplitConfig, n_items: int) -> Split:
    rank_from_end = inter.groupby("user").cumcount(ascending=False).to_numpy()
    n = inter.groupby("user")["item"].transform("size").to_numpy()
    test = _eval_rows(inter, (rank_from_end == 0) & (n >= 2))
    val = _eval_rows(inter, (rank_from_end == 1) & (n >= 3))
    # users with two interactions have a test target but no validation target
    train = inter[(rank_from_end >= 2) | ((n == 2) & (rank_from_end == 1))].reset_index(drop=True)
    part = inter[(rank_from_end >= 1)].reset_index(drop=True)
    final_fit = part if cfg.retrain_on_validation else train
    cat = catalogue_table(inter, n_items, None, None)  # the papers' whole catalogue (comparability)
    return Split(train, part, _flag_cold(val, train, mask(cat, "known_val")),
                 _flag_cold(test, final_fit, mask(cat, "known_test")), {}, cat, _same_day(val, test))


def _target_counts(name: str, rows: pd.DataFrame) -> dict:
    n = max(1, len(rows))
    return {f"{name}_unreachable_targets": int(rows["target_unreachable"].sum()),
            f"{name}_unreachable_target_fraction": round(float(rows["target_unreachable"].sum() / n), 4),
            f"{name}_cold_targets": int(rows["target_cold"].sum())}


def residual_survivorship(inter: pd.DataFrame, s: Split, k: int) -> dict:
    """What restricting lists to known items leaves of the k-core's selection (metrics only).

    The data set keeps an item only if it reaches k interactions over the whole timeline, so an item known
    at a cut-off with fewer than k interactions by then is in the data because it reached k later: a
    future hit still. Counts, per list split, the catalogue items and the cold targets in that case.
    """
    out = {}
    for name, rows, col, cut in (("val", s.val, "known_val", s.info.get("t_val")),
                                 ("test", s.test, "known_test", s.info.get("t_test"))):
        if cut is None:
            continue
        n = np.zeros(len(s.catalogue) + 1, dtype=np.int64)
        counts = inter.loc[inter["timestamp"] <= cut, "item"].value_counts()
        n[counts.index.to_numpy()] = counts.to_numpy()
        young = mask(s.catalogue, col) & (n < k)
        out[f"{name}_catalogue_items_under_{k}_at_cutoff"] = int(young.sum())
        out[f"{name}_cold_targets_under_{k}_at_cutoff"] = int((rows["target_cold"] & young[rows["target"]]).sum())
    return out


def split(inter: pd.DataFrame, cfg: SplitConfig, n_items: int | None = None) -> Split:
    """Split chronological interactions by `cfg.type`; fill `info` with the split's statistics.

    n_items: catalogue size N (ids 1..N; default: the largest id in `inter`).
    """
    inter = inter[["user", "item", "timestamp"]]
    n_items = int(inter["item"].max()) if n_items is None else n_items
    if cfg.tie_break == "random":
        inter = shuffle_ties(inter, cfg.tie_seed)
    run = global_temporal if cfg.type == "global_temporal" else leave_one_out
    s = run(inter, cfg, n_items)
    fit = s.train_full if cfg.retrain_on_validation else s.train
    info = {"type": cfg.type, "catalogue": "known_at_cutoff" if cfg.type == "global_temporal" else "whole",
            "catalogue_val_items": int(s.catalogue["known_val"].sum()),
            "catalogue_test_items": int(s.catalogue["known_test"].sum()), **s.info}
    info.update(
        train_interactions=len(s.train), train_users=int(s.train["user"].nunique()),
        train_items=int(s.train["item"].nunique()),
        final_fit_interactions=len(fit),
        val_users=len(s.val), test_users=len(s.test),
        val_cold_target_fraction=round(float(s.val["target_cold"].mean()), 4) if len(s.val) else 0.0,
        val_cold_user_fraction=round(float(s.val["user_cold"].mean()), 4) if len(s.val) else 0.0,
        test_cold_target_fraction=round(float(s.test["target_cold"].mean()), 4) if len(s.test) else 0.0,
        test_cold_user_fraction=round(float(s.test["user_cold"].mean()), 4) if len(s.test) else 0.0,
        test_mean_history_length=round(float(s.test["history_length"].mean()), 4) if len(s.test) else 0.0,
        retrain_on_validation=cfg.retrain_on_validation,
        **_target_counts("val", s.val), **_target_counts("test", s.test),
    )
    s.stats = {"tie_break": cfg.tie_break, **s.stats, **residual_survivorship(inter, s, cfg.core_k)}
    for name, rows in (("val", s.val), ("test", s.test)):  # unreachable once seen items are removed
        s.stats[f"{name}_repeat_targets"] = int(sum(y in set(h) for h, y in zip(rows["history"], rows["target"],
                                                                             strict=True)))
    s.info = info
    return s


# --- reading a written split: the one place that says which data each list's model is fit on ---------------

LISTS = ("val", "test")


def refits(info: dict) -> bool:
    """Whether a split (its split.json) has the test lists made by a model refit on train_full (train + the
    validation period, for the epoch count chosen on validation); else one model, fit on train, makes both."""
    return bool(info.get("retrain_on_validation", False))


def fit_name(info: dict, lists: str) -> str:
    """The split file (`train` or `train_full`) the model behind `lists`' lists ('val' or 'test') is fit on."""
    if lists not in LISTS:
        raise ValueError(f"lists: one of {LISTS}, got {lists!r}")
    return "train_full" if lists == "test" and refits(info) else "train"


@dataclass(frozen=True)
class SplitData:
    """A split directory as the training stages read it."""
    train: pd.DataFrame
    train_full: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    catalogue: pd.DataFrame  # lib/catalogue.py, checked against the run's item count
    info: dict  # split.json

    @property
    def refit(self) -> bool:
        return refits(self.info)

    def rows(self, lists: str) -> pd.DataFrame:
        """The evaluation rows of `lists` ('val' or 'test')."""
        return {"val": self.val, "test": self.test}[lists]

    def fit_rows(self, lists: str) -> pd.DataFrame:
        """The interactions the model behind `lists`' lists is fit on."""
        return self.train_full if fit_name(self.info, lists) == "train_full" else self.train


def read_split(split_dir, n_items: int) -> SplitData:
    """<split_dir> as the split stage wrote it; a missing file is named (FileNotFoundError), a catalogue that
    does not match the run's n_items raises ValueError (lib.catalogue.check)."""
    split_dir = Path(split_dir)
    for name in ("train.parquet", "train_full.parquet", "val.parquet", "test.parquet", "catalogue.parquet",
                 "split.json"):
        if not (split_dir / name).is_file():
            raise FileNotFoundError(f"split file not found: {split_dir / name} (written by the split stage)")
    frames = {s: pd.read_parquet(split_dir / f"{s}.parquet") for s in ("train", "train_full", "val", "test")}
    path = split_dir / "catalogue.parquet"
    return SplitData(**frames, catalogue=check(pd.read_parquet(path), n_items, str(path)),
                     info=json.loads((split_dir / "split.json").read_text()))
