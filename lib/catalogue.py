"""The catalogue knowable at a cut-off: which items a list may hold and a training objective may see.

The Beauty copy (like most public benchmarks) is 5-core filtered over the whole timeline, so an item
without a training interaction is guaranteed five later interactions: the items a temporal split
calls "cold" are exactly the future hits, and many did not exist yet when the test period starts.
Under the global temporal split a system knows an item only once it has an interaction at or
before the cut-off. So (issue 29):

- the candidates of a validation list are the items first seen at or before T_val, those of a test
  list the items first seen at or before T_test; a target outside its list's catalogue is a miss for
  every model ("unreachable", reported per protocol);
- a model trained on `train` (cut-off T_val) sees only items known at T_val in its objective (full
  softmax, sampled negatives, trie, tokenizer fit); a final refit on `train_full` those known at T_test.

Leave-one-out keeps the papers' whole catalogue: its purpose is comparability with published numbers.

The split writes `catalogue.parquet` (one row per item 1..N): item, first_seen (timestamp of its first
interaction), known_val, known_test (bool). Masks are (N+1,) bool, row 0 = padding, never known.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS = ["item", "first_seen", "known_val", "known_test"]
LIST_COLUMN = {"val": "known_val", "test": "known_test"}


def catalogue_table(inter: pd.DataFrame, n_items: int, t_val: int | None, t_test: int | None) -> pd.DataFrame:
    """Interactions (item, timestamp), ids 1..n_items -> the catalogue table.

    t_val / t_test None (leave-one-out) = every item is known at that cut-off.
    """
    first = inter.groupby("item")["timestamp"].min()
    if len(first) and (first.index.min() < 1 or first.index.max() > n_items):
        raise ValueError(f"item ids must be in 1..{n_items}")
    seen = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)  # never seen = known at no cut-off
    seen[first.index.to_numpy() - 1] = first.to_numpy()
    return pd.DataFrame({
        "item": np.arange(1, n_items + 1, dtype=np.int64), "first_seen": seen,
        "known_val": np.ones(n_items, bool) if t_val is None else seen <= t_val,
        "known_test": np.ones(n_items, bool) if t_test is None else seen <= t_test,
    })


def check(table: pd.DataFrame, n_items: int | None = None, where: str = "catalogue") -> pd.DataFrame:
    """A catalogue table read from disk -> itself; wrong columns or ids are an error naming `where`."""
    missing = sorted(set(COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}")
    ids = table["item"].to_numpy()
    if not np.array_equal(ids, np.arange(1, len(ids) + 1)):
        raise ValueError(f"{where}: column `item` must be 1..N in order")
    if n_items is not None and len(ids) != n_items:
        raise ValueError(f"{where}: {len(ids)} items, the item table has {n_items}")
    return table


def mask(table: pd.DataFrame, column: str) -> np.ndarray:
    """One bool column of the table -> (N+1,) mask with row 0 (padding) False."""
    return np.r_[False, table[column].to_numpy(bool)]


def list_mask(table: pd.DataFrame, split: str) -> np.ndarray:
    """(N+1,) the candidates of a `split` ("val" | "test") list: items known at its cut-off."""
    return mask(table, LIST_COLUMN[split])


def training_mask(table: pd.DataFrame, refit: bool) -> np.ndarray:
    """(N+1,) items a training objective may see: known at T_val (fit on train), T_test (refit on train_full)."""
    return mask(table, "known_test" if refit else "known_val")


def arrival_order(table: pd.DataFrame) -> np.ndarray:
    """(N,) item ids ordered by first_seen, then id: an item's place never depends on later items
    (collision levels assigned in this order keep a known item's code fixed when new items arrive)."""
    return table["item"].to_numpy()[np.lexsort((table["item"].to_numpy(), table["first_seen"].to_numpy()))]
