"""lib.evaluate and stages/evaluate.py: config, alignment errors, slices, paired tests, end to end."""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.config import ConfigError, from_dict
from lib.evaluate import EvaluateConfig, align, compare, evaluate, paired_test, slices

STAGES = Path(__file__).resolve().parent.parent / "stages"
N_ITEMS = 50
FAST = EvaluateConfig(n_bootstrap=200)


def _truth(seed: int, n_users: int = 150) -> pd.DataFrame:
    """Evaluation rows as the split writes them; targets never in the history, items 46..50 cold."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        n = int(rng.integers(1, 26))
        items = rng.choice(np.arange(1, N_ITEMS + 1), size=n + 1, replace=False)
        rows.append((u, items[:-1].tolist(), int(items[-1]), 1000 + u, n, bool(items[-1] > 45), bool(u % 4 == 0)))
    cols = ["user", "history", "target", "target_timestamp", "history_length", "target_cold", "user_cold"]
    return pd.DataFrame(rows, columns=cols)


def _recs(truth: pd.DataFrame, seed: int, p_first: float) -> pd.DataFrame:
    """Unfiltered full-catalogue rankings; with probability p_first the target is put first."""
    rng = np.random.default_rng(seed)
    lists = []
    for target in truth["target"]:
        order = rng.permutation(np.arange(1, N_ITEMS + 1))
        if rng.random() < p_first:
            order = np.r_[target, order[order != target]]
        lists.append(order.astype(np.int64))
    return pd.DataFrame({"user": truth["user"].to_numpy(), "items": lists})


def test_config_defaults_and_errors():
    cfg = from_dict(EvaluateConfig, None, "evaluate")
    assert cfg.ks == (5, 10, 20, 50, 100) and cfg.filter_seen and cfg.baseline == "sasrec_id"
    assert from_dict(EvaluateConfig, {"ks": [1, 10]}, "evaluate").ks == (1, 10)
    with pytest.raises(ConfigError, match="evaluate: unknown key"):
        from_dict(EvaluateConfig, {"k": [10]}, "evaluate")
    with pytest.raises(ConfigError, match="evaluate.ks"):
        from_dict(EvaluateConfig, {"ks": [10, 5]}, "evaluate")
    with pytest.raises(ConfigError, match="evaluate.significance_metrics"):
        from_dict(EvaluateConfig, {"ks": [5], "significance_metrics": ["ndcg@10"]}, "evaluate")


def test_align_orders_by_ground_truth_and_rejects_bad_files():
    recs = pd.DataFrame({"user": [2, 1], "items": [[3, 4], [5]]})
    got = align(recs, np.array([1, 2]), 10, "model 'm'")
    assert [x.tolist() for x in got] == [[5], [3, 4]]
    with pytest.raises(ValueError, match=r"model 'm'.*1 of 3 ground-truth users have no row.*\[7\]"):
        align(recs, np.array([1, 2, 7]), 10, "model 'm'")
    with pytest.raises(ValueError, match="model 'm'.*more than one row"):
        align(pd.concat([recs, recs]), np.array([1, 2]), 10, "model 'm'")
    with pytest.raises(ValueError, match=r"item ids must be in 1\.\.4"):
        align(recs, np.array([1, 2]), 4, "model 'm'")


def test_slices_by_hand():
    truth = pd.DataFrame({"history_length": [1, 5, 6, 10, 11, 20, 21, 99],
                          "target_cold": [True, False] * 4, "user_cold": [False] * 7 + [True]})
    masks = slices(truth, EvaluateConfig())
    assert list(masks) == ["cold_target", "warm_target", "cold_user", "warm_user",
                           "len_1-5", "len_6-10", "len_11-20", "len_21+"]
    assert [np.flatnonzero(masks[f"len_{b}"]).tolist() for b in ("1-5", "6-10", "11-20", "21+")] == \
        [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert masks["cold_target"].sum() == 4 and np.flatnonzero(masks["cold_user"]).tolist() == [7]


def test_paired_identical_is_not_significant(rng):
    x = rng.random(200)
    res = paired_test(x, x.copy(), FAST)
    assert res["diff"] == 0 and res["p_value"] == 1.0 and not res["significant"]
    assert res["ci_low"] == res["ci_high"] == 0


def test_paired_clearly_better_is_significant(rng):
    base = (rng.random(300) < 0.1).astype(float)
    better = np.maximum(base, (rng.random(300) < 0.5).astype(float))
    res = paired_test(base, better, FAST)
    assert res["diff"] > 0.3 and res["ci_low"] > 0 and res["p_value"] < 1e-6 and res["significant"]
    assert paired_test(base, better, FAST) == res  # seeded


def test_missing_baseline_skips_comparison(caplog):
    frame = pd.DataFrame({"user": [1, 2], "ndcg@10": [0.0, 1.0], "hr@10": [0.0, 1.0]})
    truth = pd.DataFrame({"target_cold": [False, True]})
    with caplog.at_level(logging.WARNING):
        assert compare({"a": frame, "b": frame}, truth, FAST) == {}
    assert "baseline 'sasrec_id' is not among" in caplog.text


def test_evaluate_filter_seen_switch():
    truth = pd.DataFrame({"user": [0], "history": [[4, 2]], "target": [8], "target_timestamp": [0],
                          "history_length": [2], "target_cold": [False], "user_cold": [False]})
    recs = {"sasrec_id": {s: pd.DataFrame({"user": [0], "items": [[4, 2, 8, 5]]}) for s in ("val", "test")}}
    items = pd.DataFrame({"item": np.arange(1, 11)})
    cfg = EvaluateConfig(ks=(1, 3), significance_metrics=("hr@1",))
    on = evaluate({"val": truth, "test": truth}, recs, items, cfg)
    off = evaluate({"val": truth, "test": truth}, recs, items, dataclasses.replace(cfg, filter_seen=False))
    assert on.models["sasrec_id"].metrics["test/hr@1"] == 1.0
    assert on.models["sasrec_id"].metrics["test/coverage@3"] == pytest.approx(2 / 10)  # {8, 5}
    assert off.models["sasrec_id"].metrics["test/hr@1"] == 0.0
    assert off.models["sasrec_id"].metrics["test/mrr@3"] == pytest.approx(1 / 3)


@pytest.fixture
def stage(monkeypatch):
    monkeypatch.syspath_prepend(str(STAGES))  # stage scripts import `_common` as a sibling
    return importlib.import_module("stages.evaluate")


@pytest.fixture
def workspace(tmp_path):
    for d in ("split", "recs/sasrec_id", "recs/gpt2_id"):
        (tmp_path / d).mkdir(parents=True)
    for split, seed in (("val", 1), ("test", 2)):
        truth = _truth(seed)
        truth.to_parquet(tmp_path / "split" / f"{split}.parquet")
        for model, p_first in (("sasrec_id", 0.0), ("gpt2_id", 0.8)):
            _recs(truth, seed + 10, p_first).to_parquet(tmp_path / "recs" / model / f"{split}.parquet")
    pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}).to_parquet(tmp_path / "items.parquet")
    (tmp_path / "params.yaml").write_text("evaluate:\n  ks: [5, 10, 20]\n  n_bootstrap: 200\n")
    return tmp_path


def _argv(root: Path, models: str = "sasrec_id,gpt2_id") -> list[str]:
    return ["--split-dir", str(root / "split"), "--items", str(root / "items.parquet"),
            "--recs-dir", str(root / "recs"), "--models", models, "--metrics-dir", str(root / "metrics"),
            "--leaderboard", str(root / "metrics" / "leaderboard.json"),
            "--plots-dir", str(root / "plots"), "--report", str(root / "reports" / "leaderboard.md"),
            "--per-user-dir", str(root / "eval"), "--params", str(root / "params.yaml")]


def test_stage_end_to_end(stage, workspace):
    stage.main(_argv(workspace))
    board = json.loads((workspace / "metrics" / "leaderboard.json").read_text())
    assert board["baseline"] == "sasrec_id" and list(board["models"]) == ["sasrec_id", "gpt2_id"]
    better = board["comparisons"]["gpt2_id"]
    assert set(better) == {"test/ndcg@10", "test/hr@10", "test/cold_target/ndcg@10", "test/cold_target/hr@10"}
    assert better["test/ndcg@10"]["significant"] and better["test/ndcg@10"]["diff"] > 0.5

    flat = json.loads((workspace / "metrics" / "gpt2_id.json").read_text())
    assert flat["test/users"] == 150 and flat["test/ndcg@10"] > flat["test/hr@10"] * 0.5
    assert flat["test/cold_target/users"] + flat["test/warm_target/users"] == 150
    assert {"val/ndcg@10", "test/coverage@10", "test/len_6-10/ndcg@10", "test/cold_user/hr@5"} <= set(flat)
    per_user = pd.read_parquet(workspace / "eval" / "gpt2_id_test_per_user.parquet")
    assert len(per_user) == 150 and per_user["ndcg@10"].mean() == pytest.approx(flat["test/ndcg@10"], abs=1e-6)

    report = (workspace / "reports" / "leaderboard.md").read_text()
    table = report.split("## Paired")[0]  # the leaderboard, not the comparison table below it
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "†" in rows["gpt2_id"] and "†" not in rows["sasrec_id (baseline)"]
    assert "† significantly different" in report

    vs_k = pd.read_csv(workspace / "plots" / "metrics_vs_k.csv")
    assert list(vs_k.columns) == ["model", "k", "metric", "value"] and len(vs_k) == 2 * 3 * 3
    cold_warm = pd.read_csv(workspace / "plots" / "cold_warm.csv")
    assert set(cold_warm["slice"]) == {"all", "warm_target", "cold_target"}
    for name in ("metrics_vs_k", "cold_warm"):
        assert (workspace / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_discovers_models_when_none_are_named(stage, workspace):
    stage.main(_argv(workspace, models=""))
    board = json.loads((workspace / "metrics" / "leaderboard.json").read_text())
    assert sorted(board["models"]) == ["gpt2_id", "sasrec_id"]


def test_stage_missing_user_names_model_and_file(stage, workspace):
    path = workspace / "recs" / "gpt2_id" / "test.parquet"
    pd.read_parquet(path).iloc[1:].to_parquet(path)
    with pytest.raises(SystemExit, match=r"model 'gpt2_id' \(.*gpt2_id/test\.parquet\).*no row"):
        stage.main(_argv(workspace))
    with pytest.raises(SystemExit, match="missing recommendations file .*nope/val.parquet"):
        stage.main(_argv(workspace, "sasrec_id,nope"))
