"""Small seeded synthetic data shared by the tests; nothing here reads real data or the network.

`tests/` and `tests/data/` are packages, so pytest puts the repository root on sys.path
and `lib` imports without an installed package.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DAY = 86_400
T0 = 1_300_000_000  # an Amazon-2014-era unix time


def write_gz(path: Path, lines: list[str]) -> Path:
    """Write `lines` (one record each) as a gzip text file, like the raw Amazon files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return path


def amazon_raw(seed: int = 0, n_users: int = 60, n_items: int = 30, min_len: int = 6, max_len: int = 12,
               with_rating: bool = False) -> tuple[list[str], list[str]]:
    """(review lines as JSON, metadata lines in the original Python-literal style).

    Every user rates `min_len`..`max_len` distinct items on distinct days, so with the
    defaults the whole set survives a 5-core filter.
    """
    rng = np.random.default_rng(seed)
    reviews = []
    for u in range(n_users):
        n = int(rng.integers(min_len, max_len + 1))
        items = rng.choice(n_items, size=n, replace=False)
        days = np.sort(rng.choice(1000, size=n, replace=False))
        for i, d in zip(items, days, strict=True):
            rec = {"reviewerID": f"U{u:03d}", "asin": f"B{i:04d}", "unixReviewTime": T0 + int(d) * DAY}
            if with_rating:
                rec["overall"] = float(rng.integers(1, 6))
            reviews.append(json.dumps(rec))
    meta = [
        repr({"asin": f"B{i:04d}", "title": f"Item {i} &amp; co", "brand": "Acme",
              "categories": [["Beauty", "Makeup"]], "price": round(1.5 + i, 2)})
        for i in range(n_items)
    ]
    return reviews, meta


def random_interactions(seed: int = 0, n_users: int = 80, n_items: int = 40, min_len: int = 1,
                        max_len: int = 15, n_days: int = 200) -> pd.DataFrame:
    """Encoded interactions (user, item, timestamp) sorted by user then time, like preprocess output.

    Timestamps are drawn from few days, so there are ties within and across users.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(min_len, max_len + 1))
        items = rng.integers(1, n_items + 1, size=n)
        times = np.sort(rng.integers(0, n_days, size=n)) * DAY + T0
        rows += [(u, int(i), int(t)) for i, t in zip(items, times, strict=True)]
    return pd.DataFrame(rows, columns=["user", "item", "timestamp"]).astype(np.int64)


def eval_rows(seed: int, n_users: int, first_user: int = 0, n_items: int = 50) -> pd.DataFrame:
    """Evaluation rows as the split writes them (EVAL_COLUMNS); targets never in the history; the items
    above n_items - 5 are the cold ones; every fourth user is cold."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(first_user, first_user + n_users):
        n = int(rng.integers(1, 26))
        items = rng.choice(np.arange(1, n_items + 1), size=n + 1, replace=False)
        rows.append((u, items[:-1].tolist(), int(items[-1]), 1000 + u, n, bool(items[-1] > n_items - 5),
                     bool(u % 4 == 0)))
    cols = ["user", "history", "target", "target_timestamp", "history_length", "target_cold", "user_cold"]
    return pd.DataFrame(rows, columns=cols)


def ranked_lists(truth: pd.DataFrame, seed: int, p_first: float, n_items: int = 50) -> pd.DataFrame:
    """Unfiltered full-catalogue rankings (user, items); with probability p_first the target is put first."""
    rng = np.random.default_rng(seed)
    lists = []
    for target in truth["target"]:
        order = rng.permutation(np.arange(1, n_items + 1))
        if rng.random() < p_first:
            order = np.r_[target, order[order != target]]
        lists.append(order.astype(np.int64))
    return pd.DataFrame({"user": truth["user"].to_numpy(), "items": lists})


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def write_catalogue(split_dir: Path, n_items: int, late: tuple[int, ...] = (), new: tuple[int, ...] = ()) -> Path:
    """The split's catalogue.parquet (lib/catalogue.py): every item known at T_val (10) and T_test (20)
    except `new` (first seen between them) and `late` (first seen after T_test)."""
    from lib.catalogue import catalogue_table

    first = np.zeros(n_items, dtype=np.int64)
    first[np.asarray(new, dtype=np.int64) - 1] = 15
    first[np.asarray(late, dtype=np.int64) - 1] = 30
    path = Path(split_dir) / "catalogue.parquet"
    catalogue_table(pd.DataFrame({"item": np.arange(1, n_items + 1), "timestamp": first}), n_items, 10, 20) \
        .to_parquet(path)
    return path
