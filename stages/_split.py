"""The split directory as the training stages read it (lib/data/split.py SplitData).

Apart from stages/_common.py so that only the training stages depend on it.
"""
from __future__ import annotations

from pathlib import Path

import _common  # noqa: F401  (puts the repository root on sys.path, for `lib`)
from lib.data.split import SplitData, read_split


def load_split(split_dir: Path, n_items: int) -> SplitData:
    """The split (train, train_full, val, test, catalogue, split.json); exits naming a missing file or a
    catalogue that does not match the run's items."""
    try:
        return read_split(split_dir, n_items)
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
