"""benchmarks/compare_runs.py: seed replicates pooled, seen items removed, paired difference vs a base run."""
import importlib.util
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from lib.evaluate import EvaluateConfig

_spec = importlib.util.spec_from_file_location(
    "compare_runs", Path(__file__).resolve().parent.parent / "benchmarks" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_runs)

TRUTH = pd.DataFrame({"user": [1, 2, 3, 4], "history": [[9], [8], [7], [5]], "target": [10, 11, 12, 13]})


def make_run(root: Path, name: str, overrides: list[str], lists: list[list[int]], val: float,
             model: str = "sasrec_id") -> Path:
    w = root / name
    (w / "split").mkdir(parents=True)
    (w / "recs").mkdir()
    TRUTH.to_parquet(w / "split" / "test.parquet")
    pd.DataFrame({"user": TRUTH["user"], "items": lists}).to_parquet(w / "recs" / "test.parquet")
    train = {"best_val_ndcg@10": val, "best_epoch": 3, "seconds_per_epoch": 2.0}
    (w / "result.json").write_text(json.dumps({"model": model, "overrides": overrides, "train": train}))
    return w


def test_seed_is_the_only_override_ignored_by_the_config_key():
    assert compare_runs.config_key("m", ["a.model.d=1", "a.train.seed=7"]) == "m a.model.d=1"
    assert compare_runs.config_key("m", ["a.train.seed=7"]) == "m (default)"
    assert compare_runs.config_key("m", ["b=2", "a=1"]) == compare_runs.config_key("m", ["a=1", "b=2"])
    assert compare_runs.config_key("m", []) != compare_runs.config_key("other", [])


def test_hand_computed_ranks_with_seen_items_removed(tmp_path):
    # user 1: rank 1; user 2: miss; user 3: rank 2; user 4: its seen item 5 is removed, target moves to rank 1
    run = compare_runs.load_run(make_run(tmp_path, "a", [], [[10, 1], [1, 2], [1, 12], [5, 13]], 0.05))
    assert run["hr"].tolist() == [1, 0, 1, 1]
    assert run["ndcg"].tolist() == pytest.approx([1, 0, 1 / math.log2(3), 1])


def test_replicates_pooled_and_each_run_compared_with_the_base(tmp_path):
    base = compare_runs.load_run(make_run(tmp_path, "default", [], [[10], [11], [1], [1]], 0.04))  # HR 0.5
    seed1 = compare_runs.load_run(make_run(tmp_path, "seed1", ["s.train.seed=1"], [[10], [1], [1], [1]], 0.02))
    wide = compare_runs.load_run(make_run(tmp_path, "wide", ["s.model.d=128"], [[10], [11], [12], [13]], 0.06))
    other_model = compare_runs.load_run(make_run(tmp_path, "cpi", [], [[1]] * 4, 0.01, model="sasrec_content"))
    lines = compare_runs.tables([base, seed1, wide, other_model], base, EvaluateConfig(n_bootstrap=50))
    rows = {line.split(" | ")[0].strip("| "): line for line in lines if line.startswith("| ")}
    # the two seeds of the default config are one row: val mean 0.03, sd of (0.04, 0.02); test NDCG 0.5 and 0.25
    assert rows["sasrec_id (default)"].startswith(
        "| sasrec_id (default) | 2 | 2.0 | 3 / 3 | 0.0300 ± 0.0141 | 0.3750 ± 0.1768 |")
    assert rows["sasrec_content (default)"].startswith("| sasrec_content (default) | 1 |")  # never pooled across models
    assert lines.index(rows["sasrec_id s.model.d=128"]) < lines.index(rows["sasrec_id (default)"])  # by validation
    assert "| wide | 1.0000 | +0.5000 |" in rows["wide"]
    assert "| seed1 | 0.2500 | -0.2500 |" in rows["seed1"]


def test_runs_on_different_users_are_refused(tmp_path):
    base = compare_runs.load_run(make_run(tmp_path, "default", [], [[10]] * 4, 0.04))
    other = dict(base, name="other", users=base["users"][::-1])
    with pytest.raises(SystemExit, match="different users"):
        compare_runs.tables([base, other], base, EvaluateConfig(n_bootstrap=10))


def test_missing_result_names_the_file(tmp_path):
    with pytest.raises(SystemExit, match="result.json"):
        compare_runs.load_run(tmp_path)
