"""A tiny Semantic-ID world: 24 items with 2-level codes (+ collision level) and users walking a cycle."""
import numpy as np
import pandas as pd
import pytest

N_ITEMS = 24


def sid_codes(n_items: int = N_ITEMS) -> tuple[np.ndarray, dict]:
    """Item i: codes ((i-1) // 6, (i-1) % 3, collision index): sizes 4, 3, 2 -> every ID unique."""
    i = np.arange(n_items)
    raw = np.stack([i // 6, i % 3], axis=1)
    extra = (i % 6) // 3
    codes = np.vstack([np.full(3, -1), np.column_stack([raw, extra])]).astype(np.int64)
    sizes = [4, 3, 2]
    offsets = list(np.cumsum([3] + sizes[:-1]))
    meta = {"codebook_sizes": sizes, "token_offsets": [int(o) for o in offsets],
            "special_tokens": {"pad": 0, "bos": 1, "eos": 2}, "vocab_size": 3 + sum(sizes)}
    return codes, meta


def cycle_split(n_users: int = 60, seed: int = 0, n_items: int = N_ITEMS):
    """Users walk 1..N cyclically from random starts: the next item is always current + 1.

    Training users walk 7 steps, evaluation users (other ids) have 5-item histories, so every
    position the evaluation reads was trained (GPT-2's positions are absolute).
    """
    rng = np.random.default_rng(seed)
    rows, evals = [], []
    for u in range(n_users):
        start = int(rng.integers(1, n_items + 1))
        seq = [(start + j - 1) % n_items + 1 for j in range(7)]
        rows += [(u, it, j) for j, it in enumerate(seq)]
        start = int(rng.integers(1, n_items + 1))
        seq = [(start + j - 1) % n_items + 1 for j in range(6)]
        evals.append((n_users + u, seq[:5], seq[5]))
    return (pd.DataFrame(rows, columns=["user", "item", "timestamp"]),
            pd.DataFrame(evals, columns=["user", "history", "target"]))


@pytest.fixture
def sid_world():
    return sid_codes()
