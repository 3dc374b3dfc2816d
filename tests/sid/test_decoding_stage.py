"""Stage `decoding` end to end on a tiny trained checkpoint: the JSON of every method, clear input errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from lib.sid.training import fit
from lib.sid.vocab import SidVocab
from tests.conftest import write_catalogue
from tests.sid.conftest import N_ITEMS, cycle_split, sid_codes
from tests.sid.test_generation import config

ROOT = Path(__file__).resolve().parents[2]
DECODING = {"run": "tiny", "tokenizer": "t", "protocol": "gts", "users": 12, "widths": [5, N_ITEMS],
            "hf_widths": [5], "unconstrained_widths": [5], "seed": 0, "threads": 1, "device": "cpu"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A checkpoint trained for 2 epochs, its run.json, the codes and validation rows, params.yaml."""
    tmp = tmp_path_factory.mktemp("decoding")
    codes, meta = sid_codes()
    train, val = cycle_split(n_users=30)
    fit(config(max_epochs=2, val_every=1, precision="bf16-mixed"), SidVocab.from_meta(codes, meta), meta, train,
        val, str(tmp / "ck"), progress=False)
    (tmp / "codes").mkdir()
    np.save(tmp / "codes/codes.npy", codes)
    (tmp / "codes/meta.json").write_text(json.dumps({**meta, "name": "t", "protocol": "gts"}))
    val.to_parquet(tmp / "val.parquet")
    write_catalogue(tmp, N_ITEMS)
    (tmp / "run.json").write_text(json.dumps({"name": "tiny", "family": "generators", "tokenizer": "t",
                                              "protocol": "gts"}))
    return tmp


def run_stage(tmp: Path, params: dict, run_info: str = "run.json") -> subprocess.CompletedProcess:
    (tmp / "params.yaml").write_text(yaml.safe_dump({"decoding": params}))
    args = [sys.executable, str(ROOT / "stages/decoding.py"), "--model", str(tmp / "ck/best.ckpt"),
            "--run-info", str(tmp / run_info), "--codes-dir", str(tmp / "codes"), "--val", str(tmp / "val.parquet"),
            "--catalogue", str(tmp / "catalogue.parquet"), "--metrics", str(tmp / "decoding.json"),
            "--params", str(tmp / "params.yaml")]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp)


def test_stage_writes_every_method_on_the_validation_subset(inputs):
    p = run_stage(inputs, DECODING)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads((inputs / "decoding.json").read_text())
    assert (out["run"], out["split"], out["users"], out["threads"]) == ("tiny", "val", 12, 1)
    assert out["precision"] == "bf16-mixed"  # the checkpoint's own numerical mode
    assert list(out["methods"]) == ["greedy", "beam@5", f"beam@{N_ITEMS}", "hf_greedy", "hf_beam@5",
                                    "hf_unconstrained@5"]
    for name, m in out["methods"].items():
        assert {"ndcg@10", "hr@10", "hr@100", "invalid_id_rate", "distinct_items@10", "users_per_second"} <= set(m)
        assert m["invalid_id_rate"] == 0.0 or not m["constrained"], name
    assert out["methods"][f"beam@{N_ITEMS}"]["hr@100"] == 1.0  # every unseen item listed, the target among them


def test_stage_refuses_a_run_info_of_another_tokenizer(inputs):
    (inputs / "other.json").write_text(json.dumps({"name": "tiny", "family": "generators", "tokenizer": "rqkmeans",
                                                   "protocol": "gts"}))
    p = run_stage(inputs, DECODING, "other.json")
    assert p.returncode != 0 and "tokenizer" in p.stderr and "rqkmeans" in p.stderr and "Traceback" not in p.stderr


def test_stage_refuses_codes_the_checkpoint_was_not_trained_on(inputs, tmp_path):
    codes, meta = sid_codes()
    (tmp_path / "codes").mkdir()
    np.save(tmp_path / "codes/codes.npy", codes)
    meta = {**meta, "vocab_size": meta["vocab_size"] + 1, "protocol": "gts"}
    (tmp_path / "codes/meta.json").write_text(json.dumps(meta))
    for f in ("run.json", "val.parquet", "catalogue.parquet"):
        (tmp_path / f).write_bytes((inputs / f).read_bytes())
    (tmp_path / "ck").symlink_to(inputs / "ck")
    p = run_stage(tmp_path, DECODING)
    assert p.returncode != 0 and "token layout" in p.stderr
