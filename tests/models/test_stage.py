"""Stage `train_seqrec` end to end on tiny synthetic files: a Semantic-ID run, its outputs and input errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from lib.catalogue import catalogue_table
from tests.models.test_training import N_ITEMS, tiny_split

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"sasrec": {"model": {"d_model": 16, "n_layers": 1, "n_heads": 1, "dropout": 0.0, "max_len": 8},
                     "train": {"max_epochs": 3, "patience": 3, "batch_size": 16, "lr": 0.01, "device": "cpu",
                               "threads": 1},
                     "top_k": 5},
          "runs": {"rankers": {"tiny_id": {"backbone": "sasrec", "protocol": "gts"}},
                   "code_rankers": {"tiny_plus_id": {"backbone": "sasrec", "representation": "sid_plus_id",
                                                     "tokenizer": "t", "protocol": "gts"},
                                    "tiny_unigram": {"backbone": "sasrec", "representation": "sid_unigram",
                                                     "tokenizer": "t", "protocol": "gts",
                                                     "set": {"train.max_epochs": 1}}}}}


def _inputs(tmp: Path, refit: bool = False) -> list[str]:
    train, val = tiny_split()
    train = train[train["item"] != N_ITEMS]  # the last item gets no training interaction: cold
    split = tmp / "split"
    split.mkdir()
    train.to_parquet(split / "train.parquet")
    targets = pd.DataFrame({"user": val["user"], "item": val["target"], "timestamp": 5})  # the validation period
    pd.concat([train, targets]).sort_values(["user", "timestamp"]).to_parquet(split / "train_full.parquet")
    val.to_parquet(split / "val.parquet")
    val.to_parquet(split / "test.parquet")
    (split / "split.json").write_text(json.dumps({"retrain_on_validation": refit}))
    # every item known at both cut-offs but the cold last one, first seen between T_val (4) and T_test (10)
    first = pd.DataFrame({"item": np.arange(1, N_ITEMS + 1), "timestamp": [0] * (N_ITEMS - 1) + [5]})
    catalogue_table(first, N_ITEMS, 4, 10).to_parquet(split / "catalogue.parquet")
    pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}).to_parquet(tmp / "items.parquet")
    codes = np.stack([np.arange(N_ITEMS + 1) % 4, np.arange(N_ITEMS + 1) // 4, np.zeros(N_ITEMS + 1, int)], 1)
    codes[0] = -1
    (tmp / "codes").mkdir()
    np.save(tmp / "codes/codes.npy", codes)  # 2 semantic levels + the collision level
    (tmp / "codes/meta.json").write_text(json.dumps({"levels": 2, "method": "synthetic", "protocol": "gts"}))
    (tmp / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return [sys.executable, str(ROOT / "stages/train_seqrec.py"), "--family", "code_rankers",
            "--split-dir", str(split), "--items", str(tmp / "items.parquet"), "--model-dir", str(tmp / "model"),
            "--recs-dir", str(tmp / "recs"), "--metrics", str(tmp / "m.json"), "--plots-dir", str(tmp / "plots"),
            "--run-info", str(tmp / "run.json"), "--params", str(tmp / "params.yaml")]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_semantic_id_variant_writes_lists_checkpoint_and_metrics(tmp_path):
    args = _inputs(tmp_path)
    p = _run(args + ["--run", "tiny_plus_id", "--codes", str(tmp_path / "codes")], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    for split in ("val", "test"):
        recs = pd.read_parquet(tmp_path / f"recs/{split}.parquet")
        assert len(recs) == 60 and all(len(set(x)) == len(x) for x in recs["items"])
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["model"] == "tiny_plus_id" and m["zeroed_id_rows"] == 1 and m["best_epoch"] >= 1
    run = json.loads((tmp_path / "run.json").read_text())
    assert run == {"name": "tiny_plus_id", "family": "code_rankers", "backbone": "sasrec",
                   "representation": "sid_plus_id", "tokenizer": "t", "protocol": "gts", "n_levels": 2,
                   "seed": 42, "overrides": {}, "protocol_version": 2, "rules": []}
    assert not any(N_ITEMS in x for x in pd.read_parquet(tmp_path / "recs/val.parquet")["items"])  # unknown at T_val
    state = torch.load(tmp_path / "model/model.ckpt", weights_only=False)
    assert state["hyper_parameters"]["representation"] == "sid_plus_id"
    assert state["state_dict"]["model.items.code_ids"].shape == (N_ITEMS + 1, 2)  # collision level left out
    assert state["state_dict"]["model.items.id_mask"][N_ITEMS].item() == 0
    assert not list(tmp_path.glob(".model.ckpt_tmp"))  # the scratch checkpoint directory is removed


def test_an_id_only_model_never_recommends_an_item_without_a_trained_row(tmp_path):
    args = _inputs(tmp_path)
    p = _run([a.replace("code_rankers", "rankers") for a in args] + ["--run", "tiny_id"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    for split in ("val", "test"):  # the cold item is known at T_test, but its ID row is untrained
        recs = pd.read_parquet(tmp_path / f"recs/{split}.parquet")["items"]
        assert all(len(x) >= 5 and N_ITEMS not in x for x in recs)
    (tmp_path / "split/catalogue.parquet").unlink()
    p = _run([a.replace("code_rankers", "rankers") for a in args] + ["--run", "tiny_id"], tmp_path)
    assert p.returncode != 0 and "split file not found" in p.stderr and "catalogue.parquet" in p.stderr


def test_missing_inputs_are_named(tmp_path):
    args = _inputs(tmp_path)
    p = _run(args + ["--run", "tiny_unigram"], tmp_path)
    assert p.returncode != 0 and "needs --codes" in p.stderr
    p = _run(args + ["--run", "tiny_unigram", "--codes", str(tmp_path / "nope")], tmp_path)
    assert p.returncode != 0 and "codes file not found" in p.stderr and "nope" in p.stderr
    p = _run(args + ["--run", "no_such_run", "--codes", str(tmp_path / "codes")], tmp_path)
    assert p.returncode != 0 and "runs.code_rankers.no_such_run" in p.stderr and "Traceback" not in p.stderr


def test_run_overrides_are_applied_and_checked(tmp_path):
    args = _inputs(tmp_path) + ["--codes", str(tmp_path / "codes")]
    p = _run(args + ["--run", "tiny_unigram"], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "m.json").read_text())["epochs"] == 1  # set: {train.max_epochs: 1}
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["runs"]["code_rankers"]["tiny_unigram"]["set"] = {"train.max_epoch": 1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    p = _run(args + ["--run", "tiny_unigram"], tmp_path)
    assert p.returncode != 0 and "runs.code_rankers.tiny_unigram.set.train.max_epoch" in p.stderr


def test_codes_of_another_protocol_are_refused(tmp_path):
    args = _inputs(tmp_path)
    (tmp_path / "codes/meta.json").write_text(json.dumps({"levels": 2, "method": "synthetic", "protocol": "loo"}))
    p = _run(args + ["--run", "tiny_plus_id", "--codes", str(tmp_path / "codes")], tmp_path)
    assert p.returncode != 0 and "protocol 'loo'" in p.stderr


def test_refit_split_keeps_validation_lists_of_the_chosen_model(tmp_path):
    lists = {}
    for name, refit in (("plain", False), ("refit", True)):
        d = tmp_path / name
        d.mkdir()
        p = _run(_inputs(d, refit) + ["--run", "tiny_plus_id", "--codes", str(d / "codes")], d)
        assert p.returncode == 0, p.stderr[-3000:]
        lists[name] = {s: [list(x) for x in pd.read_parquet(d / f"recs/{s}.parquet")["items"]] for s in ("val", "test")}
    assert lists["refit"]["val"] == lists["plain"]["val"]  # chosen on validation, never refit on its targets
    # test rows = validation rows here; the test lists may also hold the item first seen after T_val
    for t, v in zip(lists["plain"]["test"], lists["plain"]["val"], strict=True):
        kept = [x for x in t if x != N_ITEMS]
        assert kept == v[:len(kept)] and N_ITEMS not in v
    assert any(N_ITEMS in t for t in lists["plain"]["test"])
    assert lists["refit"]["test"] != lists["refit"]["val"]  # the refit model saw the validation targets
    m = json.loads((tmp_path / "refit/m.json").read_text())
    assert m["retrained_on_validation_epochs"] == m["best_epoch"] and m["refit_seconds"] >= 0
    assert m["zeroed_id_rows"] == 0  # the last item is warm in train_full: its ID row is learnt
