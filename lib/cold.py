"""Cold item pools: the candidates of cold-start rules and of their random controls.

`untrained`: items without an interaction in the data the model is fit on (the cold-target
definition of the split). `known_at_test`: of those, the items with an interaction at or before
T_test, the only new items a system could know when the test period starts; the others are in
the catalogue only because the 5-core filter ran over the whole timeline. Leave-one-out has no
global T_test, hence no `known_at_test` pool.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

POOLS = ("untrained", "known_at_test")


def cold_pools(n_items: int, fit_items: np.ndarray, names, interactions: pd.DataFrame | None = None,
               t_test: int | None = None) -> dict[str, np.ndarray]:
    """Pool name -> (N+1,) bool membership (index 0 is PAD, in no pool); see the module docstring.

    fit_items: the items of the model's training data. `known_at_test` needs the interactions
    (item, timestamp) and T_test; a split without T_test (leave-one-out) has no such pool.
    """
    untrained = np.ones(n_items + 1, dtype=bool)
    untrained[0] = False
    untrained[np.asarray(fit_items, dtype=np.int64)] = False
    out = {}
    for name in names:
        if name == "untrained":
            out[name] = untrained
        elif name == "known_at_test" and t_test is not None and interactions is not None:
            known = np.zeros(n_items + 1, dtype=bool)
            known[interactions.loc[interactions["timestamp"] <= t_test, "item"].to_numpy(np.int64)] = True
            out[name] = untrained & known
    return out
