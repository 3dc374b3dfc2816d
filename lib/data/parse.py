"""Parse the raw review and metadata files (Amazon 2014 layout) into flat tables.

Metadata lines come in two styles: strict JSON, and the original files' Python-literal
lines (single quotes), read with `ast.literal_eval` (never `eval`). A line that parses
as neither, or lacks a required key, is skipped and counted.
"""
from __future__ import annotations

import ast
import gzip
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm import tqdm

log = logging.getLogger(__name__)

# Raw field -> our column. Ratings and prices only when the file has them.
REVIEW_FIELDS = {"reviewerID": "user_id", "asin": "item_id", "unixReviewTime": "timestamp"}
META_TEXT_FIELDS = {"title": "title", "description": "description", "brand": "brand"}
_INT64_MIN, _INT64_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)


@dataclass(frozen=True)
class ParseConfig:
    category: str = "Beauty"  # Amazon 2014 category, names the raw files
    source_dir: str = ""  # local directory holding the raw files; "" = download when missing
    download_timeout: float = 30.0  # seconds before a stalled download fails
    categories: Literal["path", "tags"] = "path"  # meta `categories`: Amazon's category paths | a flat tag set


def _load_line(line: str) -> dict | None:
    """One record from a JSON or Python-literal line; None when it is neither a dict."""
    try:
        rec = json.loads(line)
    except ValueError:
        try:
            rec = ast.literal_eval(line)
        # TypeError: a literal with an unhashable key or set member, e.g. {[1]: 2}
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return None
    return rec if isinstance(rec, dict) else None


def _iter_records(path: Path, desc: str):
    """Yield (record or None, line) for every non-blank line of a gzip JSON-lines file."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in tqdm(f, desc=desc, unit=" lines", mininterval=2.0):
            line = line.strip()
            if line:
                yield _load_line(line)


def parse_reviews(path: Path) -> tuple[pd.DataFrame, dict]:
    """Interactions table (user_id, item_id, timestamp[, rating]) in file order, plus counts."""
    users, items, times, ratings = [], [], [], []
    lines = bad = 0
    for rec in _iter_records(path, path.name):
        lines += 1
        try:
            u, i, t = str(rec["reviewerID"]), str(rec["asin"]), int(rec["unixReviewTime"])
            if not _INT64_MIN <= t <= _INT64_MAX:  # e.g. 1e30: would overflow the int64 column
                raise ValueError(f"timestamp out of range: {t}")
            r = rec.get("overall")
            r = float(r) if r is not None else np.nan
        except (TypeError, KeyError, ValueError, OverflowError):  # OverflowError: int(Infinity)
            bad += 1
            continue
        users.append(u)
        items.append(i)
        times.append(t)
        ratings.append(r)
    df = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": np.asarray(times, dtype=np.int64)})
    rating = np.asarray(ratings, dtype=np.float64)
    if len(rating) and not np.isnan(rating).all():
        df["rating"] = rating
    if bad:
        log.warning("%s: skipped %d malformed line(s) of %d", path.name, bad, lines)
    return df, {"lines": lines, "malformed": bad, "rows": len(df), "has_rating": "rating" in df}


def _categories(value) -> str:
    """Original list-of-lists category paths -> 'A > B > C | D > E'."""
    if isinstance(value, str):
        return value
    if not isinstance(value, (list, tuple)):
        return ""
    paths = []
    for p in value:
        if isinstance(p, (list, tuple)):
            paths.append(" > ".join(str(c) for c in p))
        elif p is not None:
            paths.append(str(p))
    return " | ".join(x for x in paths if x)


def _tags(value) -> str:
    """A flat, unordered tag set (Yelp: [[tag, ...]], wrapped like a path list) -> 'tag1, tag2': the tags in
    their file order, each once, nested lists flattened; never a ' > ' path, which would claim a hierarchy."""
    if isinstance(value, str):
        return value
    out: list[str] = []

    def walk(v) -> None:
        if isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif v is not None and str(v).strip() and str(v) not in out:
            out.append(str(v))
    walk(value)
    return ", ".join(out)


CATEGORY_READERS = {"path": _categories, "tags": _tags}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):  # some categories store description as a list
        return " ".join(str(v) for v in value)
    return str(value)


def _price(value) -> float:
    try:
        return float(str(value).replace("$", "").replace(",", ""))
    except (TypeError, ValueError):
        return np.nan


def parse_meta(path: Path, categories: str = "path") -> tuple[pd.DataFrame, dict]:
    """Items table (item_id, title, description, brand, categories, price), plus counts.

    `categories` names how the `categories` field is read (CATEGORY_READERS: ParseConfig.categories)."""
    read_categories = CATEGORY_READERS[categories]
    rows = []
    lines = bad = dup = 0
    seen = set()
    for rec in _iter_records(path, path.name):
        lines += 1
        if rec is None or not isinstance(rec.get("asin"), str):
            bad += 1
            continue
        if rec["asin"] in seen:  # keep the first record of an item
            dup += 1
            continue
        seen.add(rec["asin"])
        row = {"item_id": rec["asin"]}
        row.update({col: _text(rec.get(field)) for field, col in META_TEXT_FIELDS.items()})
        row["categories"] = read_categories(rec.get("categories"))
        row["price"] = _price(rec.get("price"))
        rows.append(row)
    cols = ["item_id", "title", "description", "brand", "categories", "price"]
    df = pd.DataFrame(rows, columns=cols)
    df["price"] = df["price"].astype(np.float64)
    if bad:
        log.warning("%s: skipped %d malformed line(s) of %d", path.name, bad, lines)
    counts = {"lines": lines, "malformed": bad, "duplicates": dup, "rows": len(df)}
    for col in ("title", "description", "brand", "categories"):
        counts[f"with_{col}"] = int((df[col] != "").sum())
    counts["with_price"] = int(df["price"].notna().sum())
    return df, counts
