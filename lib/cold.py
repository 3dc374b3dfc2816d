"""Cold item pools: the candidates of cold-start rules and of their random controls.

`untrained`: items without an interaction in the data the model is fit on (the cold-target
definition of the split). `known_at_test`: of those, the items with an interaction in the split's
training part (train_full: at or before T_test), the only new items a system could know when the
test period starts; the others are in the catalogue only because the 5-core filter ran over the
whole timeline. Under leave-one-out the training part is everything but the test targets.
"""
from __future__ import annotations

import numpy as np

POOLS = ("untrained", "known_at_test")


def cold_pools(n_items: int, fit_items: np.ndarray, names, known_items: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
    """Pool name -> (N+1,) bool membership (index 0 is PAD, in no pool).

    fit_items: the items of the model's training data; known_items: the items of the split's whole
    training part (train_full: every interaction at or before T_test; under leave-one-out, all but
    the test targets). Without known_items there is no `known_at_test` pool.
    """
    untrained = np.ones(n_items + 1, dtype=bool)
    untrained[0] = False
    untrained[np.asarray(fit_items, dtype=np.int64)] = False
    out = {}
    for name in names:
        if name not in POOLS:
            raise ValueError(f"unknown cold pool {name!r}: one of {list(POOLS)}")
        if name == "untrained":
            out[name] = untrained
        elif known_items is not None:
            known = np.zeros(n_items + 1, dtype=bool)
            known[np.asarray(known_items, dtype=np.int64)] = True
            out[name] = untrained & known
    return out
