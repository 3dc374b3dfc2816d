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


def test_stage_writes_lists_checkpoint_and_sid_metrics(tmp_path):
    train, val = cycle_split(n_users=30)
    (tmp_path / "split").mkdir()
    train.to_parquet(tmp_path / "split/train.parquet")
    val.to_parquet(tmp_path / "split/val.parquet")
    val.to_parquet(tmp_path / "split/test.parquet")
    codes, meta = sid_codes()
    (tmp_path / "codes").mkdir()
    np.save(tmp_path / "codes/codes.npy", codes)
    (tmp_path / "codes/meta.json").write_text(json.dumps({**meta, "method": "synthetic"}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
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
