"""lib/collab.py and its stages: no cold item gets its learned row, the regressor sees warm items only,
ridge against a brute-force solve, the tokenizer input's layout; collab_vectors and a tokenizer over
its output on tiny synthetic files."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lib.collab import (
    TABLE_KEY,
    CollabVectorsConfig,
    check_run,
    collab_matrix,
    collab_vectors,
    fit_ridge,
    heldout_quality,
    item_rows,
    load_entry,
    tokenizer_input,
)
from lib.config import ConfigError, load_table_entry
from lib.models.config import ModelConfig, TrainConfig
from lib.models.training import SeqRecModule
from lib.tokenizers.codes import TokenizerSpec
from tests.conftest import write_catalogue
from tests.tokenizers.conftest import TINY, clusters

ROOT = Path(__file__).resolve().parent.parent

CFG = CollabVectorsConfig(vectors="minilm", run="r", protocol="gts")

def _data(seed: int = 0, n: int = 30, c: int = 6, d: int = 4, n_cold: int = 7):
    """content (n+1, c), learned rows (n+1, d) roughly linear in the content, warm flags (the last n_cold cold)."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n + 1, c))
    learned = content @ rng.normal(size=(c, d)) + 0.1 * rng.normal(size=(n + 1, d))
    content[0] = learned[0] = 0
    warm = np.ones(n + 1, bool)
    warm[0] = False
    warm[n + 1 - n_cold:] = False
    return content, learned, warm

# --- ridge ------------------------------------------------------------------------------------------------

def test_ridge_on_a_hand_case():
    """x = y = (0, 1, 2), alpha 1: centred sums xc.yc = 2, xc.xc = 2 -> slope 2 / (2 + 1), intercept 1 - 2/3."""
    r = fit_ridge(np.array([[0.0], [1.0], [2.0]]), np.array([[0.0], [1.0], [2.0]]), alpha=1.0)
    assert r.coef[0, 0] == pytest.approx(2 / 3) and r.intercept[0] == pytest.approx(1 / 3)

def test_ridge_matches_brute_force_lstsq():
    """Ridge = least squares on the centred data stacked on sqrt(alpha) * I (the intercept unpenalised)."""
    content, learned, _ = _data()
    x, y, alpha = content[1:], learned[1:], 2.5
    xc, yc = x - x.mean(0), y - y.mean(0)
    a = np.vstack([xc, np.sqrt(alpha) * np.eye(x.shape[1])])
    b = np.vstack([yc, np.zeros((x.shape[1], y.shape[1]))])
    coef = np.linalg.lstsq(a, b, rcond=None)[0]
    r = fit_ridge(x, y, alpha)
    np.testing.assert_allclose(r.coef, coef, atol=1e-10)
    np.testing.assert_allclose(r.intercept, y.mean(0) - x.mean(0) @ coef, atol=1e-10)
    # alpha -> 0 is ordinary least squares with an intercept column
    ols = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)[0]
    np.testing.assert_allclose(fit_ridge(x, y, 1e-9).predict(x), np.hstack([x, np.ones((len(x), 1))]) @ ols,
                               atol=1e-6)

def test_heldout_quality_is_seeded_and_sane():
    content, learned, warm = _data(n=200, n_cold=0)
    exact = content @ np.arange(24.0).reshape(6, 4)  # a linear map the regressor can recover
    q = heldout_quality(content[warm], exact[warm], 1e-6, 0.2, seed=0)
    assert q["holdout_items"] == 40 and q["holdout_r2"] > 0.999 and q["holdout_cosine"] > 0.999
    assert q["holdout_cosine_of_mean"] < q["holdout_cosine"]
    assert heldout_quality(content[warm], learned[warm], 1.0, 0.2, 0) == \
        heldout_quality(content[warm], learned[warm], 1.0, 0.2, 0)
    assert heldout_quality(content[warm], learned[warm], 1.0, 0.2, 0) != \
        heldout_quality(content[warm], learned[warm], 1.0, 0.2, 1)  # another seed, other held-out items
    assert heldout_quality(content[warm], learned[warm], 1.0, 0.0, 0)["holdout_r2"] is None
    with pytest.raises(ValueError, match="leaves"):
        heldout_quality(content[1:4], learned[1:4], 1.0, 0.9, 0)

# --- no cold item receives a learned row ------------------------------------------------------------------

def test_cold_rows_are_the_regressor_prediction_never_the_learned_row():
    content, learned, warm = _data()
    cold = ~warm
    cold[0] = False
    out, ridge = collab_matrix(content, learned, warm, alpha=1.0)
    np.testing.assert_array_equal(out[warm], learned[warm])  # warm: the learned rows, untouched
    np.testing.assert_array_equal(out[cold], ridge.predict(content[cold]))  # cold: exactly the prediction
    assert not np.any(out[0])
    changed = learned.copy()
    changed[cold] = 1e3  # a cold item's learned row (in SASRec-ID: only ever a negative) ...
    again, _ = collab_matrix(content, changed, warm, alpha=1.0)
    np.testing.assert_array_equal(again, out)  # ... changes nothing
    vec, col, facts = collab_vectors(content, learned, warm, CFG)
    vec2, col2, facts2 = collab_vectors(content, changed, warm, CFG)
    np.testing.assert_array_equal(vec, vec2)
    np.testing.assert_array_equal(col, col2)
    assert facts == facts2 and facts["predicted_items"] == np.flatnonzero(cold).tolist()

def test_the_regressor_is_fit_on_warm_items_only():
    content, learned, warm = _data()
    _, ridge = collab_matrix(content, learned, warm, alpha=1.0)
    moved = content.copy()
    moved[~warm] += 5.0  # cold (and padding) content: not the regressor's data
    out, ridge2 = collab_matrix(moved, learned, warm, alpha=1.0)
    np.testing.assert_array_equal(ridge2.coef, ridge.coef)
    np.testing.assert_array_equal(ridge2.intercept, ridge.intercept)
    np.testing.assert_array_equal(out[warm], learned[warm])
    np.testing.assert_array_equal(ridge.predict(content[warm]), ridge2.predict(content[warm]))
    assert not np.any(out[0])  # the padding row is never warm, never predicted
    with pytest.raises(ValueError, match="no warm item"):
        collab_matrix(content, learned, np.zeros(len(warm), bool), 1.0)

# --- the tokenizer input ----------------------------------------------------------------------------------

def test_tokenizer_input_is_unit_content_then_weighted_unit_collab():
    content, learned, _ = _data()
    x = tokenizer_input(content, learned, weight=0.5)
    assert x.shape == (31, 6 + 4) and not np.any(x[0])
    np.testing.assert_allclose(np.linalg.norm(x[1:, :6], axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(x[1:, 6:], axis=1), 0.5)
    np.testing.assert_allclose(x[1:, :6], content[1:] / np.linalg.norm(content[1:], axis=1, keepdims=True))
    np.testing.assert_allclose(x[1:, 6:], 0.5 * learned[1:] / np.linalg.norm(learned[1:], axis=1, keepdims=True))
    vec, col, facts = collab_vectors(content, learned, _data()[2], CFG)
    assert vec.dtype == col.dtype == np.float32 and vec.shape == (31, 10) and col.shape == (31, 4)
    np.testing.assert_array_equal(vec, np.round(vec, 5))  # the embed stage's 1e-5 grid
    assert facts["warm_items"] == 23 and facts["cold_items"] == 7 and facts["n_items"] == 30
    with pytest.raises(ValueError, match="rows differ"):
        collab_vectors(content[:-1], learned, _data()[2], CFG)

# --- checkpoint rows, configs, names ----------------------------------------------------------------------

def _module(representation: str, n_items: int = 12, d: int = 8, features=None) -> SeqRecModule:
    torch.manual_seed(0)
    return SeqRecModule("sasrec", representation, n_items,
                        asdict(ModelConfig(d_model=d, n_layers=1, n_heads=1, dropout=0.0, max_len=8)),
                        asdict(TrainConfig(device="cpu")), 5, features)

def test_item_rows_are_the_id_table_of_a_ranker_checkpoint():
    m = _module("id")
    ckpt = {"state_dict": m.state_dict(), "hyper_parameters": dict(m.hparams)}  # what Lightning saves
    rows = item_rows(ckpt)
    assert rows.shape == (13, 8) and not np.any(rows[0])
    np.testing.assert_allclose(rows, m.model.items().detach().numpy(), atol=1e-7)  # = the model's item matrix
    assert TABLE_KEY in ckpt["state_dict"]
    from lib.models.item_repr import ItemFeatures
    fused = _module("content_plus_id", features=ItemFeatures(content=np.zeros((13, 4), np.float32)))
    with pytest.raises(ValueError, match="'content_plus_id'"):
        item_rows({"state_dict": fused.state_dict(), "hyper_parameters": dict(fused.hparams)})
    ckpt["hyper_parameters"]["n_items"] = 11
    with pytest.raises(ValueError, match="n_items=11"):
        item_rows(ckpt)

def test_configs_are_checked_and_name_the_key():
    entry = {"vectors": "minilm", "run": "r", "protocol": "gts"}
    params = {"vectors": {"collab": {"v": {**entry, "weight": 2}}}}
    assert load_entry(params, "vectors.collab", "v", CollabVectorsConfig).weight == 2.0
    for bad, key in (({"weight": 0}, "weight"), ({"ridge_alpha": -1.0}, "ridge_alpha"), ({"holdout": 1.0}, "holdout"),
                     ({"wieght": 1.0}, "wieght")):
        params["vectors"]["collab"]["v"] = {**entry, **bad}
        with pytest.raises(ConfigError, match=f"vectors.collab.v.*{key}"):
            load_entry(params, "vectors.collab", "v", CollabVectorsConfig)
    params["vectors"]["collab"]["v"] = {"run": "r", "protocol": "gts"}
    with pytest.raises(ConfigError, match="vectors.collab.v.*vectors"):  # the content vectors are named
        load_entry(params, "vectors.collab", "v", CollabVectorsConfig)
    with pytest.raises(ConfigError, match="vectors.collab.nope: no such entry"):
        load_entry(params, "vectors.collab", "nope", CollabVectorsConfig)
    cfg = CFG
    check_run({"name": "r", "protocol": "gts"}, cfg)
    with pytest.raises(ValueError, match="trained under protocol 'loo'"):
        check_run({"name": "r", "protocol": "loo"}, cfg)

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())

def test_real_collab_entries_load_and_agree_with_their_runs():
    from lib.tokenizers.rqvae import RQVAEConfig
    runs = {name: e for table in PARAMS["runs"].values() for name, e in table.items()}
    collab = PARAMS["vectors"]["collab"]
    for name in collab:
        cfg = load_entry(PARAMS, "vectors.collab", name, CollabVectorsConfig)
        assert cfg.run in PARAMS["runs"]["rankers"], "the rows come from a ranker run"
        assert runs[cfg.run]["protocol"] == cfg.protocol and cfg.protocol in PARAMS["protocols"]
        assert cfg.vectors in PARAMS["vectors"]["embed"], "the content part is text vectors"
    for name in PARAMS["tokenizers"]:
        spec, _ = load_table_entry(PARAMS, "tokenizers", name, "rqvae", RQVAEConfig, TokenizerSpec)
        if spec.vectors in collab:  # vectors built from one split's training data serve it alone
            assert collab[spec.vectors]["protocol"] == spec.protocol

# --- the stages on tiny synthetic files -------------------------------------------------------------------

N_ITEMS = 20
COLD = (19, 20)  # no training interaction; 19 is in the validation period (train_full)

def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)

@pytest.fixture(scope="module")
def ranker(tmp_path_factory) -> Path:
    """A real Lightning checkpoint of a tiny SASRec-ID (one epoch) on a split whose items 19, 20 are cold.

    Vectors of 8 + 8 dims: faiss's OPQ corrupts memory when it has fewer fit items (18) than dims."""
    from lib.models.config import SeqRecConfig
    from lib.models.training import fit
    from tests.models.test_training import tiny_split
    tmp = tmp_path_factory.mktemp("ranker")
    train, val = tiny_split()
    train = train[~train["item"].isin(COLD)]
    cfg = SeqRecConfig(model=ModelConfig(d_model=8, n_layers=1, n_heads=1, dropout=0.0, max_len=8),
                       train=TrainConfig(max_epochs=1, patience=1, batch_size=16, device="cpu", threads=1), top_k=5)
    fit("sasrec", "id", cfg, train, val, N_ITEMS, None, str(tmp / "ckpt"), progress=False)
    (tmp / "model").mkdir()
    (tmp / "ckpt/best.ckpt").rename(tmp / "model/model.ckpt")
    split = tmp / "split"
    split.mkdir()
    train.to_parquet(split / "train.parquet")
    full = pd.concat([train, pd.DataFrame({"user": 0, "item": [COLD[0]], "timestamp": 9})])
    full.to_parquet(split / "train_full.parquet")
    return tmp

def _vectors_inputs(tmp: Path, ranker: Path, refit: bool = False, protocol: str = "gts", **entry) -> list[str]:
    emb = clusters(n_clusters=4, per=5, dim=8)  # (21, 8), unit rows, row 0 = 0
    np.save(tmp / "emb.npy", emb)
    (tmp / "emb_meta.json").write_text(json.dumps({"name": "text", "protocol": None, "model": "fake", "source": "x",
                                                   "dim": 8, "n_items": N_ITEMS}))
    (tmp / "run.json").write_text(json.dumps({"name": "tiny", "protocol": protocol, "representation": "id"}))
    split = tmp / "split"
    split.mkdir(exist_ok=True)
    for f in ("train.parquet", "train_full.parquet"):
        (split / f).write_bytes((ranker / "split" / f).read_bytes())
    (split / "split.json").write_text(json.dumps({"retrain_on_validation": refit}))
    write_catalogue(split, N_ITEMS)
    (tmp / "params.yaml").write_text(yaml.safe_dump({
        "vectors": {"collab": {"v": {"vectors": "text", "run": "tiny", "protocol": "gts", "holdout": 0.2, **entry}}},
        "rqvae": {**TINY, "hidden": [32], "method": "rqkmeans"},
        "tokenizers": {"t": {"vectors": "v", "protocol": "gts"},
                       "o": {"vectors": "v", "protocol": "gts", "set": {"method": "opq", "levels": 2}}}}))
    return [sys.executable, str(ROOT / "stages/collab_vectors.py"), "--name", "v", "--embeddings", str(tmp / "emb.npy"),
            "--embed-meta", str(tmp / "emb_meta.json"), "--model-dir", str(ranker / "model"),
            "--run-info", str(tmp / "run.json"), "--split-dir", str(split), "--out-dir", str(tmp / "vec"),
            "--metrics", str(tmp / "m.json"), "--params", str(tmp / "params.yaml")]

def test_collab_vectors_stage_writes_the_embed_contract(tmp_path, ranker):
    p = _run(_vectors_inputs(tmp_path, ranker), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    vec, col = np.load(tmp_path / "vec/embeddings.npy"), np.load(tmp_path / "vec/collab.npy")
    meta = json.loads((tmp_path / "vec/meta.json").read_text())
    m = json.loads((tmp_path / "m.json").read_text())
    assert vec.shape == (N_ITEMS + 1, 16) and col.shape == (N_ITEMS + 1, 8) and not np.any(vec[0])
    assert meta["n_items"] == N_ITEMS and meta["dim"] == 16 and meta["content_dim"] == meta["collab_dim"] == 8
    assert meta["predicted_items"] == list(COLD) and meta["run"] == "tiny" and meta["protocol"] == "gts"
    assert meta["model"] == "fake+collab:tiny" and meta["name"] == "v"
    assert m["warm_items"] == N_ITEMS - 2 and m["cold_items"] == 2 and m["holdout_items"] == 4
    assert -10 < m["holdout_r2"] <= 1 and -1 <= m["holdout_cosine"] <= 1 and m["fit_file"] == "train.parquet"
    # warm rows: the checkpoint's learned rows; cold rows: the warm-fit regressor's prediction
    learned = item_rows(torch.load(ranker / "model/model.ckpt", map_location="cpu", weights_only=False))
    warm = np.ones(N_ITEMS + 1, bool)
    warm[[0, *COLD]] = False
    np.testing.assert_allclose(col[warm], learned[warm], atol=6e-6)
    emb = np.load(tmp_path / "emb.npy").astype(np.float64)
    pred = fit_ridge(emb[warm], learned[warm], 1.0).predict(emb[list(COLD)])
    np.testing.assert_allclose(col[list(COLD)], pred, atol=6e-6)
    assert np.abs(col[list(COLD)] - learned[list(COLD)]).max() > 1e-3  # not the learned rows

def test_collab_vectors_stage_refit_split_and_bad_inputs(tmp_path, ranker):
    (tmp_path / "a").mkdir()
    p = _run(_vectors_inputs(tmp_path / "a", ranker, refit=True), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    meta = json.loads((tmp_path / "a/vec/meta.json").read_text())
    assert meta["predicted_items"] == [COLD[1]]  # item 19 is in train_full: the refit model's data
    (tmp_path / "b").mkdir()
    p = _run(_vectors_inputs(tmp_path / "b", ranker, protocol="loo"), tmp_path)
    assert p.returncode != 0 and "trained under protocol 'loo'" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "c").mkdir()
    p = _run(_vectors_inputs(tmp_path / "c", ranker, weight=-1.0), tmp_path)
    assert p.returncode != 0 and "vectors.collab.v.weight" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "b/vec").exists() and not (tmp_path / "c/vec").exists()

def _tokenizer_args(tmp: Path, name: str) -> list[str]:
    return [sys.executable, str(ROOT / "stages/tokenizer.py"), "--name", name,
            "--embeddings", str(tmp / "vec/embeddings.npy"), "--embed-meta", str(tmp / "vec/meta.json"),
            "--split-dir", str(tmp / "split"), "--codes-dir", str(tmp / "tok" / name), "--state-dir", str(tmp / "st"),
            "--metrics", str(tmp / f"tok_{name}.json"), "--plots-dir", str(tmp / "plots" / name),
            "--params", str(tmp / "params.yaml")]

def test_tokenizer_stage_on_collab_vectors(tmp_path, ranker):
    assert _run(_vectors_inputs(tmp_path, ranker), tmp_path).returncode == 0
    for name, method in (("t", "rqkmeans"), ("o", "opq")):
        p = _run(_tokenizer_args(tmp_path, name), tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        codes = np.load(tmp_path / f"tok/{name}/codes.npy")
        meta = json.loads((tmp_path / f"tok/{name}/meta.json").read_text())
        metrics = json.loads((tmp_path / f"tok_{name}.json").read_text())
        assert codes.shape == (N_ITEMS + 1, 2 + 1) and (codes[0] == -1).all()
        assert len(np.unique(codes[1:], axis=0)) == N_ITEMS  # unique Semantic IDs
        assert meta["name"] == name and meta["vectors"] == "v" and meta["protocol"] == "gts"
        assert meta["method"] == metrics["method"] == method
        assert meta["embeddings"] == {"model": "fake+collab:tiny", "dim": 16}
        assert meta["fit_item_count"] == N_ITEMS - 2  # fit on the split's training items, like any tokenizer
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["tokenizers"]["t"]["protocol"] = "loo"  # collab vectors of gts: built from gts's training data
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = _run(_tokenizer_args(tmp_path, "t"), tmp_path)
    assert p.returncode != 0 and "vectors 'v' of protocol 'gts'" in p.stderr and "of protocol 'loo'" in p.stderr
    params["tokenizers"]["t"] = {"vectors": "w", "protocol": "gts"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = _run(_tokenizer_args(tmp_path, "t"), tmp_path)
    assert p.returncode != 0 and "holds vectors 'v', not 'w'" in p.stderr and "Traceback" not in p.stderr
    params["tokenizers"]["t"] = {"vectors": "v", "protocol": "gts", "set": {"metod": "lsh"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = _run(_tokenizer_args(tmp_path, "t"), tmp_path)
    assert p.returncode != 0 and "tokenizers.t.set.metod" in p.stderr and "Traceback" not in p.stderr
