"""lib.data.split: global temporal split (Time to Split) by hand and by invariants; leave-one-out."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.data.split import EVAL_COLUMNS, SplitConfig, shuffle_ties, split
from tests.conftest import random_interactions

# user -> [(item, timestamp)], chronological. 17 timestamps, so q=0.75 lands exactly on the 13th.
HAND = {
    0: [(1, 1), (2, 3), (3, 5), (4, 30)],
    1: [(2, 2), (3, 4), (1, 20), (5, 25), (2, 26)],
    2: [(7, 6), (1, 8), (5, 24)],  # last interaction exactly at T_test: not a test user
    3: [(3, 7), (6, 28)],  # its only training-part interaction is dropped (< 2)
    4: [(1, 9), (5, 10), (4, 21)],
}


def _frame(seqs: dict) -> pd.DataFrame:
    rows = [(u, i, t) for u, seq in seqs.items() for i, t in seq]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"]).astype(np.int64)


def _rows(df: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in df[["user", "item", "timestamp"]].itertuples(index=False)]


def _eval(df: pd.DataFrame) -> dict:
    """user -> (history, target, target_timestamp, history_length, target_cold, user_cold, target_unreachable)."""
    return {r.user: (list(r.history), r.target, r.target_timestamp, r.history_length, r.target_cold,
                     r.user_cold, r.target_unreachable) for r in df.itertuples(index=False)}


def test_global_temporal_by_hand():
    inter = _frame(HAND)
    # sorted: 1 2 3 4 5 6 7 8 9 10 20 21 [24] 25 26 28 30 -> T_test = 24
    # training part (<= 24, users with >= 2): users 0 1 2 4, 12 interactions
    #   sorted: 1 2 3 4 5 6 8 9 [10 20] 21 24 -> position 8.25 -> T_val = 12.5
    assert np.quantile(inter["timestamp"], 0.75) == 24
    s = split(inter, SplitConfig(quantile=0.75))
    assert s.info["t_test"] == 24 and s.info["t_val"] == 12
    assert s.info["training_part_interactions"] == 12 and s.info["training_part_users"] == 4
    # test: last interaction > 24; history = every earlier item, including 5@25 after T_test
    # first seen: 1@1 2@2 3@4 7@6 5@10 | T_val 12 | 4@21 | T_test 24 | 6@28
    assert _eval(s.test) == {
        0: ([1, 2, 3], 4, 30, 3, True, False, False),  # item 4 only in the validation period: known, cold
        1: ([2, 3, 1, 5], 2, 26, 4, False, False, False),
        3: ([3], 6, 28, 1, False, True, True),  # item 6 first seen after T_test: unreachable, not "cold"
    }
    assert _eval(s.val) == {
        1: ([2, 3], 1, 20, 2, False, False, False),
        2: ([7, 1], 5, 24, 2, False, False, False),
        4: ([1, 5], 4, 21, 2, False, False, True),  # item 4 first seen after T_val
    }
    cat = s.catalogue.set_index("item")
    assert cat["first_seen"].tolist() == [1, 2, 4, 21, 10, 28, 6]
    assert cat.index[cat["known_val"]].tolist() == [1, 2, 3, 5, 7]
    assert cat.index[cat["known_test"]].tolist() == [1, 2, 3, 4, 5, 7]
    assert s.info["catalogue"] == "known_at_cutoff"
    assert (s.info["catalogue_val_items"], s.info["catalogue_test_items"]) == (5, 6)
    assert (s.info["test_unreachable_targets"], s.info["val_unreachable_targets"]) == (1, 1)
    assert (s.info["test_cold_targets"], s.info["val_cold_targets"]) == (1, 0)
    assert s.info["test_unreachable_target_fraction"] == round(1 / 3, 4)
    # interactions at or before T_test per item: 1:4 2:2 3:3 4:1 5:2 7:1 (6 unknown); at T_val: 1:3 2:2 3:3 5:1 7:1.
    # Item 4 (user 0's cold test target) has 1 at T_test: in the data only through later ones
    r = split(inter, SplitConfig(quantile=0.75, core_k=2)).stats
    assert r["test_cold_targets_under_2_at_cutoff"] == 1 and r["test_catalogue_items_under_2_at_cutoff"] == 2
    assert r["val_catalogue_items_under_2_at_cutoff"] == 2 and r["val_cold_targets_under_2_at_cutoff"] == 0
    assert _rows(s.train) == [(0, 1, 1), (0, 2, 3), (0, 3, 5), (1, 2, 2), (1, 3, 4), (2, 7, 6), (2, 1, 8),
                              (4, 1, 9), (4, 5, 10)]
    assert _rows(s.train_full) == _rows(inter[inter["timestamp"] <= 24].query("user != 3"))
    assert list(s.test.columns) == EVAL_COLUMNS and list(s.val.columns) == EVAL_COLUMNS
    assert s.info["train_interactions"] == 9 and s.info["final_fit_interactions"] == 9
    assert s.info["val_users"] == 3 and s.info["test_users"] == 3
    assert s.info["test_cold_target_fraction"] == round(1 / 3, 4)
    assert s.info["test_cold_user_fraction"] == round(1 / 3, 4)
    assert s.info["test_mean_history_length"] == round(8 / 3, 4)


def test_global_temporal_retrain_on_validation_changes_test_cold_flags():
    s = split(_frame(HAND), SplitConfig(quantile=0.75, retrain_on_validation=True))
    test = _eval(s.test)
    assert not test[0][4]  # item 4 is in train_full (user 4 at t=21)
    assert test[3][6] and not test[3][4] and test[3][5]  # item 6 unreachable; user 3 nowhere in the training part
    assert _eval(s.val)[4][6]  # validation is still judged at T_val
    assert s.info["final_fit_interactions"] == 12


def _reference_global_temporal(inter: pd.DataFrame, q: float):
    """The Time-to-Split rule, written out with plain Python loops."""
    seqs = {u: list(zip(g["item"], g["timestamp"], strict=True)) for u, g in inter.groupby("user", sort=True)}

    def holdout(seqs, cutoff):
        rows = {u: ([i for i, _ in s[:-1]], s[-1][0], s[-1][1])
                for u, s in seqs.items() if len(s) >= 2 and s[-1][1] > cutoff}
        rest = {u: [x for x in s if x[1] <= cutoff] for u, s in seqs.items()}
        return rows, {u: s for u, s in rest.items() if len(s) >= 2}

    t_test = np.quantile([t for s in seqs.values() for _, t in s], q)
    test, part = holdout(seqs, t_test)
    t_val = np.quantile([t for s in part.values() for _, t in s], q)
    val, train = holdout(part, t_val)
    return t_test, t_val, test, val, part, train


def _flat(seqs: dict) -> list[tuple]:
    return [(u, i, t) for u in sorted(seqs) for i, t in seqs[u]]


@pytest.mark.parametrize(("seed", "q", "retrain"), [(0, 0.9, False), (1, 0.8, True), (2, 0.5, False)])
def test_global_temporal_matches_the_rule_and_has_no_leakage(seed, q, retrain):
    inter = random_interactions(seed)
    s = split(inter, SplitConfig(quantile=q, retrain_on_validation=retrain, tie_break="file_order"))
    t_test, t_val, test, val, part, train = _reference_global_temporal(inter, q)
    assert len(test) > 5 and len(val) > 5 and len(train) > 5  # not a degenerate case

    assert s.info["t_test"] == int(t_test) and s.info["t_val"] == int(t_val)
    assert {r.user: (list(r.history), r.target, r.target_timestamp) for r in s.test.itertuples()} == test
    assert {r.user: (list(r.history), r.target, r.target_timestamp) for r in s.val.itertuples()} == val
    assert _rows(s.train) == _flat(train)
    assert _rows(s.train_full) == _flat(part)

    # invariants, independent of the reference
    assert (s.train["timestamp"] <= t_val).all()
    assert (s.train_full["timestamp"] <= t_test).all()
    assert (s.test["target_timestamp"] > t_test).all()
    assert ((s.val["target_timestamp"] > t_val) & (s.val["target_timestamp"] <= t_test)).all()
    assert (s.train.groupby("user").size() >= 2).all()
    assert (s.test["history_length"] == s.test["history"].map(len)).all()
    assert (s.test["history_length"] > 0).all() and (s.val["history_length"] > 0).all()
    full = {u: g for u, g in inter.groupby("user")}
    for r in s.test.itertuples():  # history = the user's items before the target, in order
        g = full[r.user]
        assert list(g["item"].iloc[: r.history_length]) == list(r.history)
        assert (g["timestamp"].iloc[: r.history_length] <= r.target_timestamp).all()
        assert r.history_length == len(g) - 1  # the target is the user's last interaction
    for r in s.val.itertuples():
        assert (full[r.user]["timestamp"].iloc[: r.history_length] <= r.target_timestamp).all()

    fit = s.train_full if retrain else s.train
    first = inter.groupby("item")["timestamp"].min()  # the catalogue: known once first seen at or before the cut-off
    for rows, ref, cut in ((s.val, s.train, t_val), (s.test, fit, t_test)):
        unknown = rows["target"].map(first).to_numpy() > cut
        np.testing.assert_array_equal(rows["target_unreachable"], unknown)
        np.testing.assert_array_equal(rows["target_cold"], ~rows["target"].isin(set(ref["item"])) & ~unknown)
        np.testing.assert_array_equal(rows["user_cold"], ~rows["user"].isin(set(ref["user"])))
    assert s.info["final_fit_interactions"] == len(fit)
    assert s.info["val_users"] == len(s.val) and s.info["test_users"] == len(s.test)
    assert s.info["train_users"] == s.train["user"].nunique()


def test_split_ignores_extra_columns():
    inter = _frame(HAND).assign(rating=5.0)
    s = split(inter, SplitConfig(quantile=0.75))
    assert list(s.train.columns) == ["user", "item", "timestamp"]


LOO = {
    0: [(9, 1)],  # one interaction: nothing to evaluate, nothing to train on
    1: [(1, 1), (2, 2)],  # test target only
    2: [(3, 1), (4, 5), (5, 9)],
    3: [(1, 2), (2, 3), (3, 4), (4, 8)],
}


def test_leave_one_out_by_hand():
    s = split(_frame(LOO), SplitConfig(type="leave_one_out"))
    assert _eval(s.test) == {  # the papers' whole catalogue: nothing is unreachable
        1: ([1], 2, 2, 1, False, False, False),
        2: ([3, 4], 5, 9, 2, True, False, False),
        3: ([1, 2, 3], 4, 8, 3, True, False, False),  # item 4 is only a validation target (of user 2)
    }
    assert _eval(s.val) == {
        2: ([3], 4, 5, 1, True, False, False),
        3: ([1, 2], 3, 4, 2, False, False, False),
    }
    assert s.catalogue["known_val"].all() and s.catalogue["known_test"].all() and s.info["catalogue"] == "whole"
    assert _rows(s.train) == [(1, 1, 1), (2, 3, 1), (3, 1, 2), (3, 2, 3)]
    assert _rows(s.train_full) == [(1, 1, 1), (2, 3, 1), (2, 4, 5), (3, 1, 2), (3, 2, 3), (3, 3, 4)]
    assert s.info["type"] == "leave_one_out" and "t_test" not in s.info


def test_leave_one_out_retrain_judges_test_against_train_full():
    s = split(_frame(LOO), SplitConfig(type="leave_one_out", retrain_on_validation=True))
    assert not s.test.set_index("user").loc[3, "target_cold"]  # item 4 is in train_full now
    assert s.info["final_fit_interactions"] == 6


@pytest.mark.parametrize("seed", [0, 3])
def test_leave_one_out_invariants(seed):
    inter = random_interactions(seed)
    s = split(inter, SplitConfig(type="leave_one_out", tie_break="file_order"))
    sizes = inter.groupby("user").size()
    assert set(s.test["user"]) == set(sizes[sizes >= 2].index)
    assert set(s.val["user"]) == set(sizes[sizes >= 3].index)
    for r in s.test.itertuples():
        items = inter.loc[inter["user"] == r.user, "item"].tolist()
        assert list(r.history) == items[:-1] and r.target == items[-1]
    for r in s.val.itertuples():
        items = inter.loc[inter["user"] == r.user, "item"].tolist()
        assert list(r.history) == items[:-2] and r.target == items[-2]
    # train + targets = every interaction of users with >= 2, once
    assert len(s.train) + len(s.val) + len(s.test) == int(sizes[sizes >= 2].sum())
    assert len(s.train_full) == len(s.train) + len(s.val)
    np.testing.assert_array_equal(s.val["target_cold"], ~s.val["target"].isin(set(s.train["item"])))
    np.testing.assert_array_equal(s.test["target_cold"], ~s.test["target"].isin(set(s.train["item"])))


# Same-day ties: user 0 has 3 items on day 5 (file order 1, 2, 3) after one on day 1; user 1 two on day 9.
TIES = {0: [(4, 1), (1, 5), (2, 5), (3, 5)], 1: [(5, 2), (6, 9), (7, 9)], 2: [(1, 3), (5, 4)]}


def test_file_order_ties_and_same_day_and_repeat_counts_by_hand():
    s = split(_frame(TIES), SplitConfig(type="leave_one_out", tie_break="file_order"))
    assert _eval(s.test)[0][:2] == ([4, 1, 2], 3)  # file order: the last row of the day is the target
    # test targets on the day of their input's latest item: users 0 and 1, not 2
    assert s.stats["test_same_day_target_fraction"] == round(2 / 3, 4)
    # validation (users with >= 3): user 0's 2@5 follows 1@5, user 1's 6@9 follows 5@2
    assert s.stats["val_same_day_target_fraction"] == 0.5
    assert s.stats["tie_break"] == "file_order" and s.stats["test_repeat_targets"] == 0
    rep = split(_frame({0: [(1, 1), (2, 2), (1, 3)], 1: [(3, 1), (4, 2)]}), SplitConfig(type="leave_one_out"))
    assert SplitConfig().tie_break == "random"  # the default protocol: file order encodes item age
    assert rep.stats["test_repeat_targets"] == 1 and rep.stats["val_repeat_targets"] == 0


def test_random_tie_break_permutes_only_within_a_users_day_and_is_seeded():
    inter = random_interactions(n_users=80, n_items=30, seed=3)
    inter["timestamp"] //= 7  # coarse days: many ties
    inter = inter.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    a = split(inter, SplitConfig(type="leave_one_out", tie_break="random", tie_seed=1))
    b = split(inter, SplitConfig(type="leave_one_out", tie_break="random", tie_seed=1))
    c = split(inter, SplitConfig(type="leave_one_out", tie_break="random", tie_seed=2))
    base = split(inter, SplitConfig(type="leave_one_out", tie_break="file_order"))
    for x in ("train", "val", "test"):
        pd.testing.assert_frame_equal(getattr(a, x), getattr(b, x))  # same seed, same split
    assert not a.test["target"].equals(c.test["target"]) and not a.test["target"].equals(base.test["target"])
    assert a.info == base.info  # counts unchanged: the same rows, users and cut-offs
    for x in ("val", "test"):  # the same users and target days
        assert a.__dict__[x][["user", "target_timestamp"]].equals(base.__dict__[x][["user", "target_timestamp"]])
    for r, q in zip(a.test.itertuples(), base.test.itertuples(), strict=True):  # test: all of a user's items
        assert sorted(r.history + [r.target]) == sorted(q.history + [q.target])
    shuffled = shuffle_ties(inter, 1)  # rows move only within their (user, day), and some do move
    key = ["user", "timestamp"]
    assert shuffled[key].equals(inter[key]) and not shuffled["item"].equals(inter["item"])
    assert (shuffled.groupby(key)["item"].apply(sorted) == inter.groupby(key)["item"].apply(sorted)).all()
    g = split(inter, SplitConfig(quantile=0.7, tie_break="random", tie_seed=1))  # temporal: same training rows
    g0 = split(inter, SplitConfig(quantile=0.7, tie_break="file_order"))
    assert sorted(_rows(g.train)) == sorted(_rows(g0.train)) and g.info == g0.info


def test_random_tie_break_refuses_unsorted_input():
    with pytest.raises(ValueError, match="sorted by user, then timestamp"):
        split(_frame({0: [(1, 5), (2, 1)]}), SplitConfig(tie_break="random"))


def test_an_item_first_seen_after_t_test_is_in_no_catalogue_and_never_cold():
    """The 5-core survivorship case: a new item that became popular after T_test is unreachable, not cold."""
    inter = random_interactions(5)
    t_test = int(np.quantile(inter["timestamp"], 0.9))
    late = int(inter["item"].max()) + 1  # a new item: every interaction of it after T_test
    users = inter["user"].unique()[:6]
    extra = pd.DataFrame({"user": users, "item": late, "timestamp": t_test + 1000 + np.arange(len(users))})
    inter = pd.concat([inter, extra]).sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)
    s = split(inter, SplitConfig(quantile=0.9))
    assert s.info["t_test"] <= t_test + 1000
    row = s.catalogue.set_index("item").loc[late]
    assert not row["known_val"] and not row["known_test"]
    hits = s.test[s.test["target"] == late]
    assert len(hits) > 0 and hits["target_unreachable"].all() and not hits["target_cold"].any()
    assert late not in set(s.train["item"]) and late not in set(s.train_full["item"])
