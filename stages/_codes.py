"""A tokenizer's output as the training stages read it (train_seqrec, train_generator, train_rpg).

Apart from stages/_common.py so that only the stages that read codes depend on it (a change here
leaves the other stages' dvc.lock entries valid).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

import _common  # noqa: F401  (puts the repository root on sys.path, for `lib`)
from lib.io import read_json
from lib.runs import check_codes_protocol

T = TypeVar("T")


def load_codes(codes_dir: Path, protocol: str, parse: Callable[[np.ndarray, dict], T]) -> tuple[T, dict]:
    """(`parse(codes, meta)`, meta) of the tokenizer output in `codes_dir`, for a run under `protocol`.

    codes.npy (N+1, C) is row-aligned to the item ids (row 0 = padding), its last column the collision
    level; meta.json holds levels, codebook_sizes, token offsets (lib/tokenizers/codes.py). Exits with
    a clear message when codes.npy is missing, when the codes were fit under another protocol
    (lib.runs.check_codes_protocol) or when `parse` finds them malformed (KeyError, ValueError).
    """
    path = codes_dir / "codes.npy"
    if not path.is_file():
        raise SystemExit(f"error: codes file not found: {path}")
    meta = read_json(codes_dir / "meta.json")
    try:
        check_codes_protocol(meta, protocol, codes_dir)
        return parse(np.load(path).astype(np.int64), meta), meta  # stored compact (stages/tokenizer.py)
    except (KeyError, ValueError) as e:
        raise SystemExit(f"error: bad tokenizer output in {codes_dir}: {e}") from None


def content_levels(codes: np.ndarray, meta: dict) -> np.ndarray:
    """(N+1, levels): the content codes; the collision level is not a content digit."""
    return codes[:, : int(meta["levels"])]
