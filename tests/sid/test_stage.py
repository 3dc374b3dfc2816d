"""Stage `train_generator` end to end on tiny synthetic files: outputs, metrics, clear input errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.sid.conftest import N_ITEMS, cycle_split, sid_codes

ROOT = Path(__file__).resolve().parents[2]
PARAMS = {"gpt2_sid": {
    "model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_len": 8,
              "user_buckets": 4},
    "train": {"lr": 0.003, "batch_size": 16, "max_epochs": 4, "patience": 2, "val_every": 2, "val_users": 20,
              "device": "cpu", "threads": 1},
    "decode": {"beam_width": 12, "batch_size": 8}, "top_k": 12},
    "runs": {"generators": {"tiny": {"backbone": "gpt2", "tokenizer": "t", "protocol": "gts"}}}}


def run_stage(tmp: Path, codes_dir: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, str(ROOT / "stages/train_generator.py"), "--run", "tiny", "--split-dir", str(tmp / "split"),
            "--codes-dir", str(codes_dir), "--model-dir", str(tmp / "model"), "--recs-dir", str(tmp / "recs"),
            "--metrics", str(tmp / "metrics.json"), "--plots-dir", str(tmp / "plots"),
            "--run-info", str(tmp / "run.json"), "--params", str(tmp / "params.yaml")]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp)


def write_inputs(tmp: Path, train: pd.DataFrame, val: pd.DataFrame, params: dict = PARAMS,
                 train_full: pd.DataFrame | None = None, refit: bool = False) -> None:
    """A split directory (test rows = validation rows), the synthetic codes and params.yaml under `tmp`."""
    (tmp / "split").mkdir()
    train.to_parquet(tmp / "split/train.parquet")
    (train if train_full is None else train_full).to_parquet(tmp / "split/train_full.parquet")
    val.to_parquet(tmp / "split/val.parquet")
    val.to_parquet(tmp / "split/test.parquet")
    (tmp / "split/split.json").write_text(json.dumps({"protocol": "gts", "retrain_on_validation": refit}))
    codes, meta = sid_codes()
    (tmp / "codes").mkdir()
    np.save(tmp / "codes/codes.npy", codes)
    (tmp / "codes/meta.json").write_text(json.dumps({**meta, "method": "synthetic"}))
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))


def test_stage_writes_lists_checkpoint_and_sid_metrics(tmp_path):
    train, val = cycle_split(n_users=30)
    write_inputs(tmp_path, train, val)
    _, meta = sid_codes()
    p = run_stage(tmp_path, tmp_path / "codes")
    assert p.returncode == 0, p.stderr[-3000:]
    for split in ("val", "test"):
        recs = pd.read_parquet(tmp_path / f"recs/{split}.parquet")
        assert recs["user"].tolist() == val["user"].tolist()
        for items, hist in zip(recs["items"], val["history"], strict=True):
            assert len(items) == 12 and len(set(items)) == 12 and not set(items) & set(hist)
            assert 1 <= min(items) and max(items) <= N_ITEMS
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["test/invalid_id_rate"] == 0.0 and m["test/short_lists"] == 0
    assert {"test/prefix_hr@10/codes1", "test/prefix_hr@10/codes3", "best_epoch"} <= set(m)
    assert m["method"] == "synthetic" and m["tokenizer"] == "t" and m["vocab_size"] == meta["vocab_size"] + 4
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["family"], run["representation"], run["tokenizer"]) == ("generators", "sid", "t")
    assert run["n_levels"] == m["n_levels"] > 0
    assert (tmp_path / "model/model.ckpt").is_file()


def test_stage_names_a_missing_codes_file(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (tmp_path / "codes").mkdir()
    _, meta = sid_codes()
    (tmp_path / "codes/meta.json").write_text(json.dumps(meta))
    p = run_stage(tmp_path, tmp_path / "codes")
    assert p.returncode != 0 and "codes.npy" in p.stderr


def _lists(tmp: Path, split: str) -> list[list[int]]:
    return [list(x) for x in pd.read_parquet(tmp / f"recs/{split}.parquet")["items"]]


def test_refit_split_takes_validation_lists_from_the_chosen_model_and_test_lists_from_the_refit(tmp_path):
    train, val = cycle_split(n_users=30)
    extra = pd.DataFrame([(u, i, 100 + j) for u, h, t in zip(val["user"], val["history"], val["target"], strict=True)
                          for j, i in enumerate([*h, t])], columns=["user", "item", "timestamp"])  # val period
    full = pd.concat([train, extra], ignore_index=True)
    plain, refit = tmp_path / "plain", tmp_path / "refit"
    for d, is_refit in ((plain, False), (refit, True)):
        d.mkdir()
        write_inputs(d, train, val, train_full=full, refit=is_refit)
        p = run_stage(d, d / "codes")
        assert p.returncode == 0, p.stderr[-3000:]
    assert _lists(refit, "val") == _lists(plain, "val")  # the same seeded model, chosen on validation
    assert _lists(plain, "test") == _lists(plain, "val")  # test rows = validation rows here ...
    assert _lists(refit, "test") != _lists(refit, "val")  # ... but the refit model saw the targets
    m = json.loads((refit / "metrics.json").read_text())
    assert m["retrained_on_validation_epochs"] == m["best_epoch"] and m["refit_seconds"] >= 0
    assert "refit_seconds" not in json.loads((plain / "metrics.json").read_text())


def test_cold_rule_draws_from_the_configured_pool(tmp_path):
    train, val = cycle_split(n_users=30)
    train = train[train["item"] < 19]  # 19..24 untrained
    val = val[~val["history"].apply(lambda h: bool(set(h) & set(range(19, 25))))].reset_index(drop=True)
    full = pd.concat([train, pd.DataFrame({"user": 0, "item": [19, 20, 21], "timestamp": 99})])  # known 19-21
    found = {}
    for pool in ("untrained", "known_at_test"):
        params = json.loads(json.dumps(PARAMS))
        params["gpt2_sid"]["decode"] |= {"cold_every": 2, "cold_prefix": 1, "cold_pool": pool}
        d = tmp_path / pool
        d.mkdir()
        write_inputs(d, train, val, params, train_full=full)
        p = run_stage(d, d / "codes")
        assert p.returncode == 0, p.stderr[-3000:]
        found[pool] = {i for x in _lists(d, "test") for i in x if i >= 19}
    assert found["known_at_test"] and found["known_at_test"] <= {19, 20, 21}
    assert found["untrained"] - {19, 20, 21}  # the wider pool also injects items unknown at T_test
