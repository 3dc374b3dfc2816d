"""Filtering and label encoding: raw interactions -> dense, N-core item sequences.

Order within a user: by timestamp, ties broken by the raw file order (a stable sort on
the row index), so the same input always gives the same sequences. Exact duplicate rows (same
user, item and timestamp) go first, before any filter: the consecutive-repeat removal is optional
and misses a duplicate whenever another item of the same user shares its timestamp and sits
between the copies in the file.
"""
from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("title", "description", "brand", "categories")
_WS = re.compile(r"\s+")
# An opening, closing or self-closing tag of a known HTML element, attributes allowed. Known names only,
# so text like "size < 5 oz", "a<b" or "<3" is never touched; "<Insert name>" is not a tag either.
_TAG = re.compile(
    r"</?(a|abbr|b|big|blockquote|br|center|code|dd|del|div|dl|dt|em|font|h[1-6]|hr|i|img|ins|li|ol|p|"
    r"pre|s|small|span|strike|strong|sub|sup|table|tbody|td|th|thead|tr|tt|u|ul)\b[^<>]*>",
    re.IGNORECASE,
)
# Inline tags vanish ("<b>x</b>y" -> "xy", "H<sub>2</sub>O" -> "H2O"); all others (br, p, li, td, ...)
# separate words, so "a<br>b" -> "a b".
_INLINE_TAGS = {"a", "abbr", "b", "big", "code", "del", "em", "font", "i", "ins", "s", "small", "span",
                "strike", "strong", "sub", "sup", "tt", "u"}


@dataclass(frozen=True)
class PreprocessConfig:
    min_rating: float | None = None  # keep ratings >= this (4 = the "rating > 3" subset); null = off
    min_user_interactions: int = 5  # N-core threshold for users
    min_item_interactions: int = 5  # N-core threshold for items
    remove_consecutive_repeats: bool = True  # drop a user's immediate re-interaction with the same item
    max_iterations: int = 100  # safety cap on the filter fixpoint loop

    def validate(self) -> None:
        if self.min_user_interactions < 1:
            raise ValueError("min_user_interactions: must be >= 1")
        if self.min_item_interactions < 1:
            raise ValueError("min_item_interactions: must be >= 1")
        if self.max_iterations < 1:
            raise ValueError("max_iterations: must be >= 1")


def chronological(df: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then timestamp, ties by raw file order (column `row`)."""
    return df.sort_values(["user_id", "timestamp", "row"], kind="stable").reset_index(drop=True)


def drop_duplicate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Remove rows repeating an earlier row's (user_id, item_id, timestamp); the first copy stays."""
    return df[~df.duplicated(["user_id", "item_id", "timestamp"], keep="first")]


def drop_consecutive_repeats(df: pd.DataFrame) -> pd.DataFrame:
    """Remove rows repeating the user's previous item. `df` must be chronological."""
    same = (df["user_id"].to_numpy()[1:] == df["user_id"].to_numpy()[:-1]) & (
        df["item_id"].to_numpy()[1:] == df["item_id"].to_numpy()[:-1]
    )
    keep = np.concatenate([[True], ~same])[: len(df)]  # [: len] keeps an empty frame empty
    return df[keep].reset_index(drop=True)


def n_core(df: pd.DataFrame, cfg: PreprocessConfig) -> tuple[pd.DataFrame, int]:
    """Repeat repeat-removal and user/item N-core filtering until nothing changes."""
    for it in range(1, cfg.max_iterations + 1):
        before = len(df)
        if cfg.remove_consecutive_repeats:
            df = drop_consecutive_repeats(df)
        item_counts = df["item_id"].map(df["item_id"].value_counts())
        df = df[item_counts >= cfg.min_item_interactions]
        user_counts = df["user_id"].map(df["user_id"].value_counts())
        df = df[user_counts >= cfg.min_user_interactions].reset_index(drop=True)
        if len(df) == before:
            return df, it
    raise RuntimeError(f"N-core filtering did not converge in {cfg.max_iterations} iterations")


def _tag_gap(m: re.Match) -> str:
    return "" if m.group(1).lower() in _INLINE_TAGS else " "


def clean_text(value: str) -> str:
    """Unescape HTML entities, strip HTML tags, collapse whitespace.

    Unescaping runs twice (the raw data double-escapes some) and before the tags go, so an escaped
    tag ("&lt;b&gt;", "&amp;lt;br&amp;gt;") is removed too: the item text is what a shop page would
    show, and an encoded tag is markup that failed to render, not words.
    """
    if not isinstance(value, str) or not value:
        return ""
    text = _TAG.sub(_tag_gap, html.unescape(html.unescape(value)))
    return _WS.sub(" ", text).strip()


def preprocess(
    interactions: pd.DataFrame, items: pd.DataFrame, cfg: PreprocessConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Filter and encode.

    Returns
      inter: (user, item, timestamp[, rating]) chronological per user; items 1..N, users 0..U-1
      item_table: one row per encoded item in id order (item = 1..N), metadata or empty strings
      user_table: (user, user_id) raw id per encoded user
      stats: counts for metrics/preprocess.json
    """
    df = drop_duplicate_rows(interactions).copy()  # first: a copy's rating must not change the filters
    duplicates = len(interactions) - len(df)
    df["row"] = np.arange(len(df))  # raw file order, the tie-break
    if cfg.min_rating is not None:
        if "rating" not in df or df["rating"].isna().all():
            raise ValueError(
                "preprocess.min_rating is set but the interactions have no ratings "
                "(the offline Beauty copy has none); set preprocess.min_rating: null"
            )
        df = df[df["rating"] >= cfg.min_rating]
    df = chronological(df)
    df, iterations = n_core(df, cfg)
    if df.empty:
        raise ValueError("no interactions left after filtering; lower the N-core thresholds")

    # Sorted raw ids -> dense ids: independent of file order, so reproducible.
    item_ids = np.sort(df["item_id"].unique())
    user_ids = np.sort(df["user_id"].unique())
    item_index = pd.Series(np.arange(1, len(item_ids) + 1), index=item_ids)  # 0 = padding
    user_index = pd.Series(np.arange(len(user_ids)), index=user_ids)
    inter = pd.DataFrame(
        {
            "user": user_index.loc[df["user_id"]].to_numpy(np.int64),
            "item": item_index.loc[df["item_id"]].to_numpy(np.int64),
            "timestamp": df["timestamp"].to_numpy(np.int64),
        }
    )
    if "rating" in df:
        inter["rating"] = df["rating"].to_numpy()
    # `user_id` is sorted like `user`, so the chronological order survives the encoding.

    meta = items.drop_duplicates("item_id").set_index("item_id")
    table = pd.DataFrame({"item": np.arange(1, len(item_ids) + 1), "item_id": item_ids})
    has_meta = np.isin(item_ids, meta.index)
    for col in TEXT_COLUMNS:
        vals = meta[col].reindex(item_ids) if col in meta else pd.Series([""] * len(item_ids))
        table[col] = [clean_text(v) for v in vals.fillna("").to_numpy()]
    table["price"] = (meta["price"].reindex(item_ids).to_numpy(np.float64)
                      if "price" in meta else np.full(len(item_ids), np.nan))
    users = pd.DataFrame({"user": np.arange(len(user_ids)), "user_id": user_ids})

    lengths = inter.groupby("user").size()
    stats = {
        "users": int(len(user_ids)),
        "items": int(len(item_ids)),
        "interactions": int(len(inter)),
        "mean_sequence_length": round(float(lengths.mean()), 4),
        "median_sequence_length": float(lengths.median()),
        "density": round(len(inter) / (len(user_ids) * len(item_ids)), 8),
        "items_without_metadata": int((~has_meta).sum()),
        "items_without_title": int((table["title"] == "").sum()),
        "n_core_iterations": iterations,
        "rows_in": int(len(interactions)),
        "duplicate_rows_removed": int(duplicates),
        "rating_filter": cfg.min_rating,
    }
    return inter, table, users, stats
