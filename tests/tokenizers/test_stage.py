"""Stage `tokenizer` end to end on tiny synthetic files, for every method: outputs, metrics, clear input errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lib.catalogue import catalogue_table
from lib.tokenizers import pq
from lib.tokenizers.codes import collision_level
from lib.tokenizers.rqvae import from_checkpoint, quantize_all
from tests.conftest import write_catalogue
from tests.tokenizers.conftest import TINY, clusters

ROOT = Path(__file__).resolve().parents[2]


ENTRY = {"vectors": "v", "protocol": "gts"}  # a `tokenizers` entry over the test vectors


def catalogue(n_items: int, first_seen: np.ndarray) -> pd.DataFrame:
    """A catalogue.parquet from the first_seen (n,) of items 1..n: T_val = 0, T_test = 1."""
    return catalogue_table(pd.DataFrame({"item": np.arange(1, n_items + 1), "timestamp": first_seen}), n_items, 0, 1)


def _stage_inputs(tmp: Path, emb: np.ndarray, n_items: int, entry: dict | None = None, refit: bool = False,
                  cat: pd.DataFrame | None = None, **params) -> list[str]:
    np.save(tmp / "emb.npy", emb)
    (tmp / "emb_meta.json").write_text(json.dumps({"name": "v", "protocol": None, "model": "fake", "dim": emb.shape[1],
                                                   "n_items": n_items}))
    (tmp / "split").mkdir(exist_ok=True)
    train_items = np.arange(1, n_items - 9)  # the last 10 items are cold; 5 of them are in the validation period
    if cat is None:  # those 5 first seen between T_val and T_test, the last 5 after T_test
        write_catalogue(tmp / "split", n_items, new=tuple(range(n_items - 9, n_items - 4)),
                        late=tuple(range(n_items - 4, n_items + 1)))
    else:
        cat.to_parquet(tmp / "split/catalogue.parquet")
    pd.DataFrame({"user": 0, "item": train_items, "timestamp": 0}).to_parquet(tmp / "split/train.parquet")
    pd.DataFrame({"user": 0, "item": np.arange(1, n_items - 4), "timestamp": 0}).to_parquet(
        tmp / "split/train_full.parquet")
    (tmp / "split/split.json").write_text(json.dumps({"retrain_on_validation": refit}))
    (tmp / "params.yaml").write_text(yaml.safe_dump({"rqvae": {**TINY, "hidden": [32], **params},
                                                     "tokenizers": {"t": entry or ENTRY}}))
    return [sys.executable, str(ROOT / "stages/tokenizer.py"), "--name", "t", "--embeddings", str(tmp / "emb.npy"),
            "--embed-meta", str(tmp / "emb_meta.json"), "--split-dir", str(tmp / "split"),
            "--codes-dir", str(tmp / "out"), "--state-dir", str(tmp / "out"), "--metrics", str(tmp / "m.json"),
            "--plots-dir", str(tmp / "plots"),
            "--params", str(tmp / "params.yaml")]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def _check_outputs(tmp: Path, n: int, method: str) -> tuple[np.ndarray, dict, dict]:
    """The contract the generator reads: unique IDs, row 0 padding, meta consistent with the codes."""
    codes = np.load(tmp / "out/codes.npy")
    meta = json.loads((tmp / "out/meta.json").read_text())
    metrics = json.loads((tmp / "m.json").read_text())
    assert codes.shape == (n + 1, 3) and codes.dtype == np.int16 and (codes[0] == -1).all()  # committed: compact
    assert len(np.unique(codes[1:], axis=0)) == n and (codes[1:, :2] < 8).all() and (codes[1:] >= 0).all()
    assert meta["method"] == method and meta["levels"] == 2 and meta["n_levels"] == 3 and meta["n_items"] == n
    assert meta["codebook_sizes"][:2] == [8, 8] and meta["codebook_sizes"][2] == codes[1:, 2].max() + 1
    assert meta["token_offsets"] == [3, 11, 19] and meta["vocab_size"] == 19 + meta["codebook_sizes"][2]
    assert meta["embeddings"] == {"model": "fake", "dim": 16}
    assert {"collision_rate", "largest_group", "colliding_groups", "fit_item_count", "level_0", "level_1",
            "peak_memory_mb"} <= set(metrics)
    assert (tmp / "out/model.pt").is_file() and (tmp / "plots").is_dir()  # dvc.yaml declares both
    assert meta["name"] == "t" and meta["protocol"] == metrics["protocol"] == "gts" and metrics["method"] == method
    usage = pd.read_csv(tmp / "plots/code_usage.csv")  # what the report plots instead of reading the codes
    for level in (1, 2):
        counts = usage[usage["level"] == level]["items"].to_numpy()
        assert counts.sum() == n and (np.diff(counts) <= 0).all()
        per_code = np.bincount(codes[1:, level - 1])
        assert np.array_equal(np.sort(counts), np.sort(per_code[per_code > 0]))
    return codes, meta, metrics


def test_stage_writes_unique_ids_meta_model_and_metrics(tmp_path):
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    p = _run(_stage_inputs(tmp_path, emb, n), tmp_path)
    assert p.returncode == 0, p.stderr
    codes, meta, metrics = _check_outputs(tmp_path, n, "rqvae")
    assert meta["fit_items"] == "train" and meta["fit_item_count"] == n - 10
    assert {"recon_mse", "recon_cosine", "train_seconds"} <= set(metrics)
    model = from_checkpoint(torch.load(tmp_path / "out/model.pt", weights_only=False))
    again, _, _ = quantize_all(model, torch.as_tensor(emb[1:]))
    assert np.array_equal(again.numpy(), codes[1:, :2])
    assert (tmp_path / "plots/plots/metrics/recon_mse.tsv").is_file()


QUANT = {"quant_mse", "quant_rel", "quant_cosine"}


@pytest.mark.parametrize("method, fit_count, extra", [
    ("rqkmeans", 30, QUANT), ("random", 0, set()), ("lsh", 0, set()),
    ("pq", 30, QUANT | {"fit_seconds"}), ("opq", 30, QUANT | {"fit_seconds"})])
def test_stage_runs_every_method(tmp_path, method, fit_count, extra):
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    p = _run(_stage_inputs(tmp_path, emb, n, method=method), tmp_path)
    assert p.returncode == 0, p.stderr
    codes, meta, metrics = _check_outputs(tmp_path, n, method)
    assert meta["fit_item_count"] == fit_count == metrics["fit_item_count"] and extra <= set(metrics)
    assert "recon_mse" not in metrics
    assert meta.get("parallel", False) is (method in ("pq", "opq"))  # unordered digits, flagged for consumers
    state = torch.load(tmp_path / "out/model.pt", weights_only=False)
    assert state["config"]["method"] == method
    if method in ("pq", "opq"):  # model.pt re-encodes every item to the codes written
        assert np.array_equal(pq.encode(emb[1:], state), codes[1:, :2])


def test_rerun_writes_the_same_model_pt_bytes(tmp_path):
    """model.pt is a DVC output (and RPG's codebook init reads it): a rerun must not change its hash."""
    emb = clusters(n_clusters=4, per=10)
    blobs = []
    for run in ("a", "b"):
        (tmp_path / run).mkdir()
        p = _run(_stage_inputs(tmp_path / run, emb, len(emb) - 1, method="opq"), tmp_path / run)
        assert p.returncode == 0, p.stderr
        blobs.append((tmp_path / run / "out/model.pt").read_bytes())
    assert blobs[0] == blobs[1]


def test_stage_names_the_param_when_pq_cannot_split_the_embedding(tmp_path):
    emb = clusters(n_clusters=4, per=10)  # dim 16
    p = _run(_stage_inputs(tmp_path, emb, len(emb) - 1, method="opq", levels=3), tmp_path)
    assert p.returncode != 0 and "levels" in p.stderr and "not divisible by 3" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "out").exists()


def test_refit_split_still_fits_at_the_validation_cut_off(tmp_path):
    """Under a refit protocol the final model trains on train_full, but its epoch count comes from a model trained
    on `train` with the same codes: the fit stays on train's items (known at T_val), as without refit."""
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    codes = {}
    for refit in (False, True):
        d = tmp_path / str(refit)
        d.mkdir()
        p = _run(_stage_inputs(d, emb, n, refit=refit, method="rqkmeans"), d)
        assert p.returncode == 0, p.stderr
        codes[refit], meta, _ = _check_outputs(d, n, "rqkmeans")
        assert meta["fit_item_count"] == n - 10  # train.parquet's items, not train_full's (n - 5)
    np.testing.assert_array_equal(codes[False], codes[True])


def test_stage_rejects_misaligned_embeddings(tmp_path):
    emb = clusters(n_clusters=4, per=10)
    emb[0, 0] = 1.0
    p = _run(_stage_inputs(tmp_path, emb, len(emb) - 1), tmp_path)
    assert p.returncode != 0 and "row 0" in p.stderr and "Traceback" not in p.stderr
    emb[0, 0] = 0.0
    p = _run(_stage_inputs(tmp_path, emb, len(emb)), tmp_path)  # meta says one more item than rows
    assert p.returncode != 0 and "expected (42, dim)" in p.stderr
    args = _stage_inputs(tmp_path, emb, len(emb) - 1)
    (tmp_path / "split/train.parquet").unlink()
    p = _run(args, tmp_path)
    assert p.returncode != 0 and "train.parquet" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()
    args = _stage_inputs(tmp_path, emb, len(emb) - 1)
    (tmp_path / "split/catalogue.parquet").unlink()
    p = _run(args, tmp_path)
    assert p.returncode != 0 and "catalogue.parquet" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_fit_items_all_is_an_error_under_a_temporal_catalogue(tmp_path):
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    p = _run(_stage_inputs(tmp_path, emb, n, method="rqkmeans", fit_items="all"), tmp_path)
    assert p.returncode != 0 and "fit_items=all" in p.stderr and "10 of 40 items unknown" in p.stderr
    assert "Traceback" not in p.stderr and not (tmp_path / "out").exists()
    # leave-one-out's catalogue knows every item: all is then every item, no future in it
    p = _run(_stage_inputs(tmp_path, emb, n, method="rqkmeans", fit_items="all", cat=catalogue(n, np.zeros(n, int))),
             tmp_path)
    assert p.returncode == 0, p.stderr
    assert json.loads((tmp_path / "out/meta.json").read_text())["fit_item_count"] == n


def test_a_future_item_changes_no_other_code_and_not_the_fit(tmp_path):
    """OPQ on whitened principal components (RPG's tokenizer): an item first seen after T_test is only
    encoded; moving its embedding leaves model.pt and every other item's codes byte-identical."""
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    moved = emb.copy()
    moved[n] = -emb[1]
    outs = []
    for name, e in (("a", emb), ("b", moved)):
        (tmp_path / name).mkdir()
        p = _run(_stage_inputs(tmp_path / name, e, n, method="opq", pca_dim=8), tmp_path / name)
        assert p.returncode == 0, p.stderr
        outs.append((np.load(tmp_path / name / "out/codes.npy"), (tmp_path / name / "out/model.pt").read_bytes()))
    assert np.array_equal(outs[0][0][:n], outs[1][0][:n]) and outs[0][1] == outs[1][1]
    assert json.loads((tmp_path / "a/m.json").read_text())["known_items"] == n - 10


def test_collision_level_is_assigned_in_arrival_order(tmp_path):
    """Random codes of 2 x 2 collide a lot. Items 1-5 arrive last: every earlier item's collision level is the
    one it has in a catalogue without them, so no later arrival (smaller ids included) renumbers it."""
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    first_seen = np.r_[np.zeros(5, int), np.full(n - 5, -1)]  # all known at T_val = 0, items 1-5 the latest
    p = _run(_stage_inputs(tmp_path, emb, n, method="random", codebook_size=2, cat=catalogue(n, first_seen)),
             tmp_path)
    assert p.returncode == 0, p.stderr
    codes = np.load(tmp_path / "out/codes.npy")
    meta = json.loads((tmp_path / "out/meta.json").read_text())
    assert meta["collision_order"] == "arrival" and len(np.unique(codes[1:], axis=0)) == n
    early = codes[6:, :2]  # items 6..n, known before items 1-5 arrive
    assert np.array_equal(codes[6:, 2], collision_level(early))  # as if items 1-5 did not exist
    assert not np.array_equal(codes[1:, 2], collision_level(codes[1:, :2]))  # item id order would differ


def test_stage_names_the_bad_param(tmp_path):
    emb = clusters(n_clusters=4, per=10)
    p = _run(_stage_inputs(tmp_path, emb, len(emb) - 1, method="lsh", codebook_size=6), tmp_path)
    assert p.returncode != 0 and "rqvae.codebook_size" in p.stderr and "Traceback" not in p.stderr


def test_table_entry_overrides_the_params_section(tmp_path):
    """params `tokenizers.<name>.set` overrides keys of `rqvae`; overrides are checked like params."""
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    args = _stage_inputs(tmp_path, emb, n, entry={**ENTRY, "set": {"method": "random", "codebook_size": 8}})
    p = _run(args, tmp_path)  # the section says method rqvae
    assert p.returncode == 0, p.stderr
    _check_outputs(tmp_path, n, "random")
    assert torch.load(tmp_path / "out/model.pt", weights_only=False)["config"]["method"] == "random"
    bad = _run(_stage_inputs(tmp_path, emb, n, entry={**ENTRY, "set": {"method": "kmeans"}}), tmp_path)
    assert bad.returncode != 0 and "rqvae.method" in bad.stderr and "'kmeans'" in bad.stderr
    typo = _run(_stage_inputs(tmp_path, emb, n, entry={**ENTRY, "set": {"metod": "lsh"}}), tmp_path)
    assert typo.returncode != 0 and "tokenizers.t.set.metod" in typo.stderr and "Traceback" not in typo.stderr
