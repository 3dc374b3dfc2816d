"""Cold items: those a model never trained on, and the knowable cold pool of a list.

`untrained`: items without an interaction in the data the model is fit on. The cold pool of a list,
`knowable`, is the untrained items of the list's catalogue (lib/catalogue.py: items known at its
cut-off): the only new items a system could know when the list is made. The pool the 5-core filter
built over the whole timeline (every untrained item, most of them future hits) is gone: it measured
the dataset's survivorship, not a model. The evaluator scores each list's cold slots against a random
control drawn from this pool; a cold-start rule (an analysis, never a headline) draws from it too.
"""
from __future__ import annotations

import numpy as np

POOLS = ("knowable",)


def untrained(n_items: int, fit_items: np.ndarray) -> np.ndarray:
    """(N+1,) bool: a real item (row 0 is padding) without an interaction in `fit_items`."""
    out = np.ones(n_items + 1, dtype=bool)
    out[0] = False
    out[np.asarray(fit_items, dtype=np.int64)] = False
    return out


def knowable_pool(candidates: np.ndarray, fit_items: np.ndarray) -> np.ndarray:
    """(N+1,) bool: the list's candidates ((N+1,) bool) that the model never trained on."""
    candidates = np.asarray(candidates, dtype=bool)
    return candidates & untrained(len(candidates) - 1, fit_items)


def cold_pools(names, catalogues: dict[str, np.ndarray], fit_items: dict[str, np.ndarray]
               ) -> dict[str, dict[str, np.ndarray]]:
    """Pool name -> split -> (N+1,) membership.

    catalogues: split ("val", "test") -> (N+1,) list candidates; fit_items: split -> the items of the
    data the model that made that split's lists was fit on (train; train_full under a final refit).
    """
    out = {}
    for name in names:
        if name not in POOLS:
            raise ValueError(f"unknown cold pool {name!r}: one of {list(POOLS)}")
        out[name] = {s: knowable_pool(catalogues[s], fit_items[s]) for s in catalogues}
    return out
