"""Stage `train_generator` end to end on tiny synthetic files: outputs, metrics, clear input errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tests.conftest import write_catalogue
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
                 train_full: pd.DataFrame | None = None, refit: bool = False, new=(), late=()) -> None:
    """A split directory (test rows = validation rows), the synthetic codes and params.yaml under `tmp`;
    the catalogue knows every item at both cut-offs but `new` (first seen between T_val and T_test) and
    `late` (after T_test)."""
    (tmp / "split").mkdir()
    write_catalogue(tmp / "split", N_ITEMS, late=late, new=new)
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
    assert run["n_levels"] == m["n_levels"] > 0 and run["rules"] == []  # no list-injection rule by default
    assert m["val/catalogue_items"] == m["test/catalogue_items"] == N_ITEMS
    assert (tmp_path / "model/model.ckpt").is_file()


def test_stage_names_a_missing_codes_file(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (tmp_path / "codes").mkdir()
    _, meta = sid_codes()
    (tmp_path / "codes/meta.json").write_text(json.dumps(meta))
    p = run_stage(tmp_path, tmp_path / "codes")
    assert p.returncode != 0 and "codes.npy" in p.stderr


def test_stage_names_a_missing_or_bad_catalogue(tmp_path):
    train, val = cycle_split(n_users=10)
    write_inputs(tmp_path, train, val)
    (tmp_path / "split/catalogue.parquet").unlink()
    p = run_stage(tmp_path, tmp_path / "codes")
    assert p.returncode != 0 and "catalogue.parquet" in p.stderr and "Traceback" not in p.stderr
    write_catalogue(tmp_path / "split", N_ITEMS - 1)  # one item short of the codes
    p = run_stage(tmp_path, tmp_path / "codes")
    assert p.returncode != 0 and "catalogue.parquet" in p.stderr and f"has {N_ITEMS}" in p.stderr


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


def test_lists_hold_only_items_known_at_their_cut_off_and_the_cold_rule_only_knowable_ones(tmp_path):
    """Items 19-21 first appear after T_val, 22-24 after T_test: none is trained on; 19-21 are generated
    through their codes in test lists only, 22-24 never. The cold rule (an analysis) is recorded in run.json."""
    train, val = cycle_split(n_users=30)
    train = train[train["item"] < 19]
    val = val[~val["history"].apply(lambda h: bool(set(h) & set(range(19, 25))))].reset_index(drop=True)
    wide = json.loads(json.dumps(PARAMS))
    wide["gpt2_sid"] |= {"decode": {"beam_width": N_ITEMS, "batch_size": 8}, "top_k": N_ITEMS}  # every candidate
    rule = json.loads(json.dumps(PARAMS))
    rule["gpt2_sid"]["decode"] |= {"cold_every": 2, "cold_prefix": 1}
    for name, params in (("wide", wide), ("rule", rule)):
        d = tmp_path / name
        d.mkdir()
        write_inputs(d, train, val, params, new=(19, 20, 21), late=(22, 23, 24))
        p = run_stage(d, d / "codes")
        assert p.returncode == 0, p.stderr[-3000:]
        val_lists, test_lists = _lists(d, "val"), _lists(d, "test")
        assert all(max(x) <= 18 for x in val_lists)  # validation: items known at T_val only
        assert all(max(x) <= 21 for x in test_lists)  # test: known at T_test, never 22-24
        m = json.loads((d / "metrics.json").read_text())
        assert (m["val/catalogue_items"], m["test/catalogue_items"]) == (18, 21)
        assert m["val/invalid_id_rate"] == m["test/invalid_id_rate"] == 0.0
        run = json.loads((d / "run.json").read_text())
        assert run["rules"] == ([] if name == "wide" else ["tiger_cold_start"])
    wide_test = _lists(tmp_path / "wide", "test")
    for items, hist in zip(wide_test, val["history"], strict=True):  # every unseen candidate, 19-21 included
        assert sorted(items) == sorted(set(range(1, 22)) - set(hist))
    assert {i for x in _lists(tmp_path / "rule", "test") for i in x[1::2]} & {19, 20, 21}  # the rule's ranks
