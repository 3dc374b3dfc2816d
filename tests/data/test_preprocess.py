"""lib.data.preprocess: duplicate and repeat removal, iterative N-core fixpoint, encoding, text cleaning."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lib.data.preprocess import PreprocessConfig, clean_text, preprocess
from tests.conftest import random_interactions

META_COLUMNS = ["item_id", "title", "description", "brand", "categories", "price"]
NO_META = pd.DataFrame(columns=META_COLUMNS)


def _raw(rows, rating=None) -> pd.DataFrame:
    """(user_id, item_id, timestamp) tuples in raw file order -> a parsed interactions table."""
    df = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    df["timestamp"] = df["timestamp"].astype(np.int64)
    if rating is not None:
        df["rating"] = np.asarray(rating, dtype=np.float64)
    return df


def _cfg(users=1, items=1, **kw) -> PreprocessConfig:
    return PreprocessConfig(min_user_interactions=users, min_item_interactions=items, **kw)


def _sequences(inter, item_table, user_table) -> dict[str, list[str]]:
    """Encoded output -> raw user id -> raw item ids in order, via the two tables."""
    item_of = dict(zip(item_table["item"], item_table["item_id"], strict=True))
    user_of = dict(zip(user_table["user"], user_table["user_id"], strict=True))
    return {user_of[u]: [item_of[i] for i in g["item"]] for u, g in inter.groupby("user", sort=False)}


def _run(rows, cfg, items=NO_META, rating=None):
    inter, table, users, stats = preprocess(_raw(rows, rating), items, cfg)
    return _sequences(inter, table, users), (inter, table, users, stats)


def test_consecutive_repeats_are_removed_but_returns_are_kept():
    rows = [("u", "A", 1), ("u", "A", 2), ("u", "B", 3), ("u", "A", 4)]
    seqs, _ = _run(rows, _cfg())
    assert seqs == {"u": ["A", "B", "A"]}
    seqs, _ = _run(rows, _cfg(remove_consecutive_repeats=False))
    assert seqs == {"u": ["A", "A", "B", "A"]}


def test_exact_duplicates_removed_even_when_not_consecutive():
    # Same timestamp: B sorts between the two copies of A, so repeat removal alone keeps both.
    rows = [("u", "A", 5), ("u", "B", 5), ("u", "A", 5), ("u", "C", 6), ("u", "C", 6)]
    seqs, (*_, stats) = _run(rows, _cfg())
    assert seqs == {"u": ["A", "B", "C"]}
    assert stats["duplicate_rows_removed"] == 2 and stats["rows_in"] == 5
    # also with repeat removal off; a return at another time is not a duplicate
    seqs, (*_, stats) = _run(rows + [("u", "A", 7)], _cfg(remove_consecutive_repeats=False))
    assert seqs == {"u": ["A", "B", "C", "A"]}
    assert stats["duplicate_rows_removed"] == 2


def test_duplicates_go_before_the_rating_filter_first_copy_wins():
    rows = [("u", "A", 1), ("u", "B", 2), ("u", "A", 1)]
    seqs, (inter, *_, stats) = _run(rows, _cfg(min_rating=4.0), rating=[2.0, 5.0, 5.0])
    assert seqs == {"u": ["B"]}  # the later, high-rated copy of A does not bring A back
    assert stats["duplicate_rows_removed"] == 1


@pytest.mark.parametrize("repeats", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_duplicated_input_gives_the_deduplicated_result(seed, repeats):
    enc = random_interactions(seed, n_users=150, n_items=40, min_len=1, max_len=15, n_days=20)  # many ties
    clean = pd.DataFrame({"user_id": "u" + enc["user"].astype(str), "item_id": "i" + enc["item"].astype(str),
                          "timestamp": enc["timestamp"]})
    clean = clean.drop_duplicates().sample(frac=1.0, random_state=seed).reset_index(drop=True)  # shuffled file
    rng = np.random.default_rng(seed)
    copies = clean.iloc[rng.choice(len(clean), size=len(clean) // 3)]  # some rows twice or more
    dup = pd.concat([clean, copies]).sample(frac=1.0, random_state=seed + 10)
    dup = dup.reset_index(drop=True)
    first = ~dup.duplicated()
    dedup = dup[first].reset_index(drop=True)  # what the file would be without the copies, in file order
    cfg = _cfg(users=3, items=3, remove_consecutive_repeats=repeats)

    inter, table, users, stats = preprocess(dup, NO_META, cfg)
    ref = preprocess(dedup, NO_META, cfg)
    assert stats["duplicate_rows_removed"] == len(copies) == len(dup) - len(dedup)
    assert stats["rows_in"] == len(dup)
    back = pd.DataFrame({"u": inter["user"], "i": inter["item"], "t": inter["timestamp"]})
    assert not back.duplicated().any()
    pd.testing.assert_frame_equal(inter, ref[0])
    pd.testing.assert_frame_equal(table, ref[1])
    pd.testing.assert_frame_equal(users, ref[2])
    assert ref[3]["duplicate_rows_removed"] == 0
    assert {k: v for k, v in stats.items() if k not in ("rows_in", "duplicate_rows_removed")} == \
        {k: v for k, v in ref[3].items() if k not in ("rows_in", "duplicate_rows_removed")}


def test_n_core_cascades_to_a_fixpoint():
    # X is rare -> u1 drops below 2 -> Y drops below 2 -> u2 drops below 2 -> Z drops below 2 -> u3 ...
    rows = [
        ("u1", "X", 1), ("u1", "Y", 2),
        ("u2", "Y", 3), ("u2", "Z", 4),
        ("u3", "Z", 5), ("u3", "P", 6),
        ("c1", "P", 7), ("c1", "Q", 8),
        ("c2", "P", 9), ("c2", "Q", 10),
    ]
    seqs, (*_, stats) = _run(rows, _cfg(users=2, items=2))
    assert seqs == {"c1": ["P", "Q"], "c2": ["P", "Q"]}
    assert stats["n_core_iterations"] > 2


def test_filtering_that_creates_a_new_repeat_removes_it_too():
    # B is rare; without it u1 reads A A, which must collapse to A (and then u1 has 1 item).
    rows = [("u1", "A", 1), ("u1", "B", 2), ("u1", "A", 3), ("u2", "A", 4), ("u2", "C", 5),
            ("u3", "C", 6), ("u3", "A", 7)]
    seqs, _ = _run(rows, _cfg(users=1, items=2))
    assert seqs == {"u1": ["A"], "u2": ["A", "C"], "u3": ["C", "A"]}
    # with a user threshold of 2, u1 then falls out
    seqs, _ = _run(rows, _cfg(users=2, items=2))
    assert seqs == {"u2": ["A", "C"], "u3": ["C", "A"]}


def _reference_core(df: pd.DataFrame, ku: int, ki: int) -> pd.DataFrame:
    """Peel one offending user or item at a time, users first: the maximal core is order-independent."""
    df = df.copy()
    while True:
        uc, ic = df["user_id"].value_counts(), df["item_id"].value_counts()
        if (uc < ku).any():
            df = df[df["user_id"] != uc[uc < ku].index[0]]
        elif (ic < ki).any():
            df = df[df["item_id"] != ic[ic < ki].index[0]]
        else:
            return df


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_n_core_matches_a_reference_peeling(seed):
    enc = random_interactions(seed, n_users=120, n_items=60, min_len=1, max_len=12)
    raw = pd.DataFrame({"user_id": "u" + enc["user"].astype(str), "item_id": "i" + enc["item"].astype(str),
                        "timestamp": enc["timestamp"]}).sample(frac=1.0, random_state=seed)  # shuffled file
    cfg = _cfg(users=4, items=5, remove_consecutive_repeats=False)
    inter, table, users, _ = preprocess(raw, NO_META, cfg)
    ref = _reference_core(raw.drop_duplicates(), 4, 5)  # exact duplicates go before the core
    assert len(ref) > 0 and len(ref) < len(raw)  # the case is not trivial
    got = pd.DataFrame({"user_id": users.set_index("user").loc[inter["user"], "user_id"].to_numpy(),
                        "item_id": table.set_index("item").loc[inter["item"], "item_id"].to_numpy(),
                        "timestamp": inter["timestamp"].to_numpy()})
    key = ["user_id", "item_id", "timestamp"]
    pd.testing.assert_frame_equal(got.sort_values(key).reset_index(drop=True),
                                  ref[key].sort_values(key).reset_index(drop=True), check_dtype=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_output_satisfies_thresholds_and_has_no_repeats(seed):
    enc = random_interactions(seed, n_users=150, n_items=30, min_len=1, max_len=15)
    raw = pd.DataFrame({"user_id": "u" + enc["user"].astype(str), "item_id": "i" + enc["item"].astype(str),
                        "timestamp": enc["timestamp"]})
    cfg = _cfg(users=5, items=6)
    inter, *_ = preprocess(raw, NO_META, cfg)
    assert inter.groupby("user").size().min() >= 5
    assert inter.groupby("item").size().min() >= 6
    same_user = inter["user"].to_numpy()[1:] == inter["user"].to_numpy()[:-1]
    same_item = inter["item"].to_numpy()[1:] == inter["item"].to_numpy()[:-1]
    assert not (same_user & same_item).any()
    # chronological within user, users contiguous and ascending
    assert inter.equals(inter.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True))


def test_encoding_is_dense_and_item_table_is_row_aligned():
    # non-ASCII and mixed-case ids: the encoded order must still follow the raw-id sort
    rows = [("zoë", "B9", 5), ("Adam", "a1", 3), ("zoë", "a1", 1), ("Émile", "B9", 2), ("Adam", "ß", 9),
            ("Émile", "ß", 1), ("Adam", "B9", 4)]
    raw = _raw(rows)
    inter, table, users, stats = preprocess(raw, NO_META, _cfg())
    n_items, n_users = 3, 3
    assert sorted(inter["item"].unique()) == list(range(1, n_items + 1))  # 0 is padding
    assert sorted(inter["user"].unique()) == list(range(n_users))
    assert table["item"].tolist() == list(range(1, n_items + 1))
    assert users["user"].tolist() == list(range(n_users))
    assert table["item_id"].tolist() == sorted({r[1] for r in rows})
    assert users["user_id"].tolist() == sorted({r[0] for r in rows})
    assert table["item_id"].is_unique and users["user_id"].is_unique
    # mapping back through the tables recovers the raw interactions exactly
    raw_user = users["user_id"].to_numpy()[inter["user"]]
    raw_item = table["item_id"].to_numpy()[inter["item"] - 1]  # row i-1 = item i
    back = sorted(zip(raw_user, raw_item, inter["timestamp"], strict=True))
    assert back == sorted(rows)
    assert inter.equals(inter.sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True))
    assert stats["users"] == n_users and stats["items"] == n_items and stats["interactions"] == len(rows)


def test_same_timestamp_ties_keep_raw_file_order():
    rows = [("u", "C", 5), ("u", "A", 5), ("u", "B", 5), ("u", "D", 1), ("v", "B", 7), ("v", "A", 7)]
    seqs, _ = _run(rows, _cfg())
    assert seqs == {"u": ["D", "C", "A", "B"], "v": ["B", "A"]}
    seqs, _ = _run(rows[::-1], _cfg())
    assert seqs == {"u": ["D", "B", "A", "C"], "v": ["A", "B"]}


def test_item_table_metadata_cleaning_and_missing_items():
    rows = [("u", "X1", 1), ("u", "X2", 2), ("u", "X3", 3), ("v", "X3", 1)]
    meta = pd.DataFrame([
        {"item_id": "X3", "title": "  A &amp; B\n\tC  ", "description": "5 &lt; 6", "brand": "",
         "categories": "Beauty > Makeup", "price": 3.5},
        {"item_id": "X1", "title": "Double &amp;quot;quoted&amp;quot;", "description": "",
         "brand": "Acme&nbsp;Inc", "categories": "", "price": np.nan},
        {"item_id": "UNUSED", "title": "not in the interactions", "description": "", "brand": "",
         "categories": "", "price": 1.0},
    ], columns=META_COLUMNS)
    inter, table, users, stats = preprocess(_raw(rows), meta, _cfg())
    assert table["item_id"].tolist() == ["X1", "X2", "X3"]
    assert table.loc[0, "title"] == 'Double "quoted"'
    assert table.loc[0, "brand"] == "Acme Inc"  # &nbsp; -> non-breaking space -> collapsed
    assert table.loc[2, "title"] == "A & B C"
    assert table.loc[2, "description"] == "5 < 6"
    assert table.loc[2, "price"] == 3.5
    # X2 has no metadata: a row of empty strings, counted
    assert table.loc[1, ["title", "description", "brand", "categories"]].tolist() == ["", "", "", ""]
    assert np.isnan(table.loc[1, "price"])
    assert stats["items_without_metadata"] == 1
    assert stats["items_without_title"] == 1
    assert len(table) == stats["items"] == 3


def test_items_without_any_metadata_table():
    _, (_, table, _, stats) = _run([("u", "A", 1), ("u", "B", 2)], _cfg())
    assert len(table) == 2
    assert (table["title"] == "").all()
    assert stats["items_without_metadata"] == 2


@pytest.mark.parametrize(("raw", "clean"), [
    ("A &amp; B", "A & B"),
    ("a &amp;amp; b", "a & b"),
    ("  lots\n of \t space ", "lots of space"),
    ("", ""),
    (None, ""),
    (float("nan"), ""),
    # tags: inline ones vanish, the rest separate words; whitespace collapsed afterwards
    ("Soap <b>x</b>", "Soap x"),
    ("<B>Bold</B> claim", "Bold claim"),
    ("line one<br/>line two<br>three<BR />four", "line one line two three four"),
    ('see <a href="http://x.com/?a=1&b=2" target="_blank">our shop</a>.', "see our shop."),
    ("<p>First.</p><p>Second.</p>", "First. Second."),
    ("<ul><li>one</li><li>two</li></ul>", "one two"),
    ("H<sub>2</sub>O and 3<sup>rd</sup>", "H2O and 3rd"),
    # entities are unescaped first, so an escaped (or double-escaped) tag goes too
    ("&lt;b&gt;New&lt;/b&gt; formula", "New formula"),
    ("Tom &amp;amp; Jerry&amp;lt;br /&amp;gt;soap", "Tom & Jerry soap"),
    ("5 &lt; 6 &amp; <i>7</i> &gt; 2", "5 < 6 & 7 > 2"),
    # not tags: left alone
    ("size < 5 oz", "size < 5 oz"),
    ("a<b", "a<b"),
    ("I <3 it", "I <3 it"),
    ("x <= y >= z", "x <= y >= z"),
    ("<Insert name here>", "<Insert name here>"),
    ("<bold> claims", "<bold> claims"),
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_min_rating_filters_before_the_core():
    rows = [("u", "A", 1), ("u", "B", 2), ("u", "C", 3), ("v", "A", 1)]
    seqs, (inter, *_ , stats) = _run(rows, _cfg(min_rating=4.0), rating=[5, 3, 4, np.nan])
    assert seqs == {"u": ["A", "C"]}
    assert inter["rating"].tolist() == [5.0, 4.0]
    assert stats["rating_filter"] == 4.0
    assert stats["rows_in"] == 4


@pytest.mark.parametrize("rating", [None, [np.nan, np.nan]])
def test_min_rating_without_ratings_is_a_clear_error(rating):
    with pytest.raises(ValueError, match=r"min_rating .*no ratings"):
        preprocess(_raw([("u", "A", 1), ("u", "B", 2)], rating), NO_META, _cfg(min_rating=4.0))


@pytest.mark.parametrize(("cfg", "rating"), [
    (_cfg(users=5, items=5), None),  # emptied by the core, then repeat removal sees an empty frame
    (_cfg(users=5, items=5, remove_consecutive_repeats=False), None),
    (_cfg(min_rating=5.0), [1.0, 2.0]),  # emptied by the rating filter
])
def test_everything_filtered_is_a_clear_error(cfg, rating):
    with pytest.raises(ValueError, match="no interactions left"):
        preprocess(_raw([("u", "A", 1), ("u", "B", 2)], rating), NO_META, cfg)


def test_preprocess_does_not_modify_its_inputs():
    raw = _raw([("u", "A", 2), ("u", "A", 1), ("v", "B", 1)])
    copy = raw.copy()
    preprocess(raw, NO_META, _cfg())
    pd.testing.assert_frame_equal(raw, copy)
