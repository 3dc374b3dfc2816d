"""The split's catalogue as the stages read it (lib/catalogue.py): the items known at each cut-off.

Apart from stages/_common.py so that only the stages that read the catalogue depend on it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

import _common  # noqa: F401  (puts the repository root on sys.path, for `lib`)
from lib import catalogue


def load_catalogue(split_dir: Path, n_items: int) -> pd.DataFrame:
    """<split_dir>/catalogue.parquet (item, first_seen, known_val, known_test), checked against the n_items
    of the codes or embeddings (lib.catalogue.check); exits naming the file when it is missing or malformed."""
    path = split_dir / "catalogue.parquet"
    if not path.is_file():
        raise SystemExit(f"error: catalogue file not found: {path} (written by the split stage)")
    try:
        return catalogue.check(pd.read_parquet(path), n_items, str(path))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None

