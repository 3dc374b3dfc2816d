"""lib.evaluate and stages/evaluate.py: config, alignment errors, slices, stored ranks, one run end to end."""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.catalogue import catalogue_table
from lib.cold import cold_pools
from lib.config import ConfigError, from_dict
from lib.evaluate import (
    EvaluateConfig,
    align,
    cold_control,
    evaluate_run,
    loaded_ranks,
    slices,
    stored_ranks,
)
from lib.metrics import per_user_metrics
from tests.conftest import eval_rows, ranked_lists

STAGES = Path(__file__).resolve().parent.parent / "stages"
N_ITEMS = 50


def _truth(seed: int, n_users: int = 150) -> pd.DataFrame:
    return eval_rows(seed, n_users, n_items=N_ITEMS)


def _recs(truth: pd.DataFrame, seed: int, p_first: float) -> pd.DataFrame:
    return ranked_lists(truth, seed, p_first, N_ITEMS)


def test_config_defaults_and_errors():
    cfg = from_dict(EvaluateConfig, None, "evaluate")
    assert cfg.ks == (5, 10, 20, 50, 100) and cfg.filter_seen
    assert from_dict(EvaluateConfig, {"ks": [1, 10]}, "evaluate").ks == (1, 10)
    with pytest.raises(ConfigError, match="evaluate: unknown key"):
        from_dict(EvaluateConfig, {"k": [10]}, "evaluate")
    with pytest.raises(ConfigError, match="evaluate.ks"):
        from_dict(EvaluateConfig, {"ks": [10, 5]}, "evaluate")


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
    masks = slices(truth, (5, 10, 20))
    assert list(masks) == ["cold_target", "warm_target", "unreachable_target", "cold_user", "warm_user",
                           "len_1-5", "len_6-10", "len_11-20", "len_21+"]
    assert not masks["unreachable_target"].any()  # an old per-user file without the column
    masks = slices(truth.assign(target_unreachable=[False] * 7 + [True], target_cold=[True, False] * 3 + [True, False]),
                   (5, 10, 20))
    assert np.flatnonzero(masks["warm_target"]).tolist() == [1, 3, 5]  # warm = neither cold nor unreachable
    assert [np.flatnonzero(masks[f"len_{b}"]).tolist() for b in ("1-5", "6-10", "11-20", "21+")] == \
        [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert masks["cold_target"].sum() == 4 and np.flatnonzero(masks["cold_user"]).tolist() == [7]


def test_stored_ranks_round_trip():
    ranks = np.array([1.0, np.inf, 100.0, 7.0])
    stored = stored_ranks(ranks)
    assert stored.dtype == np.int16 and stored.tolist() == [1, 0, 100, 7]
    assert np.array_equal(loaded_ranks(stored), ranks)


def test_filter_seen_switch_by_hand():
    truth = pd.DataFrame({"user": [0], "history": [[4, 2]], "target": [8], "target_timestamp": [0],
                          "history_length": [2], "target_cold": [False], "user_cold": [False]})
    recs = {s: pd.DataFrame({"user": [0], "items": [[4, 2, 8, 5]]}) for s in ("val", "test")}
    items = pd.DataFrame({"item": np.arange(1, 11)})
    cfg = EvaluateConfig(ks=(1, 3), control_k=3)
    on = evaluate_run({"val": truth, "test": truth}, recs, items, cfg)
    off = evaluate_run({"val": truth, "test": truth}, recs, items, dataclasses.replace(cfg, filter_seen=False))
    assert on.metrics["test/hr@1"] == 1.0 and on.metrics["test/coverage@3"] == pytest.approx(2 / 10)  # {8, 5}
    assert off.metrics["test/hr@1"] == 0.0 and off.metrics["test/mrr@3"] == pytest.approx(1 / 3)
    assert on.per_user["rank"].tolist() == [1, 1] and off.per_user["rank"].tolist() == [3, 3]


def test_unfiltered_scores_revisits_beside_the_filtered_figures():
    """User 0 re-visits item 4 (in its history), user 1 wants a new item. Filtered, the re-visit is a miss for any
    list; unfiltered, it is hit at rank 1, and the new target moves from rank 1 to rank 3 (4 and 2 come first)."""
    truth = pd.DataFrame({"user": [0, 1], "history": [[4, 2], [4, 2]], "target": [4, 8], "target_timestamp": [0, 0],
                          "history_length": [2, 2], "target_cold": [False, False], "user_cold": [False, False]})
    recs = {s: pd.DataFrame({"user": [0, 1], "items": [[4, 2, 8, 5], [4, 2, 8, 5]]}) for s in ("val", "test")}
    items = pd.DataFrame({"item": np.arange(1, 11)})
    cfg = EvaluateConfig(ks=(1, 3), control_k=3)
    plain = evaluate_run({"val": truth, "test": truth}, recs, items, cfg)
    both = evaluate_run({"val": truth, "test": truth}, recs, items, dataclasses.replace(cfg, unfiltered=True))
    assert {k: v for k, v in both.metrics.items() if "/unfiltered/" not in k} == plain.metrics  # main figures kept
    m = both.metrics
    assert m["test/hr@1"] == 0.5 and m["test/unfiltered/hr@1"] == 0.5  # filtered: user 1; unfiltered: user 0
    assert m["test/unfiltered/repeat_target/hr@1"] == 1.0 and m["test/unfiltered/new_target/hr@1"] == 0.0
    assert m["test/unfiltered/new_target/mrr@3"] == pytest.approx(1 / 3)
    assert m["test/unfiltered/repeat_target/users"] == 1 and m["val/unfiltered/users"] == 2
    test = both.per_user[both.per_user["split"] == "test"]
    assert test["rank"].tolist() == [0, 1] and test["rank_unfiltered"].tolist() == [1, 3]
    assert test["target_repeat"].tolist() == [True, False]
    assert "rank_unfiltered" not in plain.per_user  # off (Beauty): the per-user file is as before
    with pytest.raises(ConfigError, match="evaluate.unfiltered"):
        from_dict(EvaluateConfig, {"unfiltered": True, "filter_seen": False}, "evaluate")


def test_per_user_ranks_reproduce_every_mean():
    """The committed per-user file is enough to recompute each mean and slice the metrics file holds."""
    truth = {"val": _truth(1), "test": _truth(2)}
    recs = {s: _recs(truth[s], 7, 0.3) for s in ("val", "test")}
    cfg = EvaluateConfig(ks=(5, 10, 20))
    ev = evaluate_run(truth, recs, pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}), cfg)
    assert ev.per_user["split"].tolist() == ["val"] * 150 + ["test"] * 150
    for split in ("val", "test"):
        rows = ev.per_user[ev.per_user["split"] == split]
        assert rows["user"].tolist() == truth[split]["user"].tolist()
        values = per_user_metrics(loaded_ranks(rows["rank"].to_numpy()), cfg.ks)
        for col in values.columns:
            assert values[col].mean() == pytest.approx(ev.metrics[f"{split}/{col}"], abs=1e-6)
    test = ev.per_user[ev.per_user["split"] == "test"]
    cold = test["target_cold"].to_numpy()
    values = per_user_metrics(loaded_ranks(test["rank"].to_numpy()), cfg.ks)
    assert ev.metrics["test/cold_target/users"] == cold.sum() > 0
    assert values["hr@10"][cold].mean() == pytest.approx(ev.metrics["test/cold_target/hr@10"], abs=1e-6)
    assert ev.metrics["test/cold_target/users"] + ev.metrics["test/warm_target/users"] == 150
    assert {"val/ndcg@10", "test/coverage@10", "test/len_6-10/ndcg@10", "test/cold_user/hr@5"} <= set(ev.metrics)


@pytest.fixture
def stage(monkeypatch):
    monkeypatch.syspath_prepend(str(STAGES))  # stage scripts import `_common` as a sibling
    return importlib.import_module("stages.evaluate")


@pytest.fixture
def workspace(tmp_path):
    for d in ("split", "recs", "results/r"):
        (tmp_path / d).mkdir(parents=True)
    for split, seed in (("val", 1), ("test", 2)):
        truth = _truth(seed)
        truth.to_parquet(tmp_path / "split" / f"{split}.parquet")
        _recs(truth, seed + 10, 0.5).to_parquet(tmp_path / "recs" / f"{split}.parquet")
    pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}).to_parquet(tmp_path / "items.parquet")
    # training data without items 1-5: they are the `untrained` pool; 1-3 are in the training part (validation)
    train = pd.DataFrame({"user": 0, "item": np.arange(6, N_ITEMS + 1), "timestamp": 1})
    train.to_parquet(tmp_path / "split/train.parquet")
    pd.concat([train, pd.DataFrame({"user": 1, "item": [1, 2, 3], "timestamp": 5})]) \
        .to_parquet(tmp_path / "split/train_full.parquet")
    (tmp_path / "split/split.json").write_text(json.dumps({"t_test": 10, "retrain_on_validation": False}))
    # items 1-3 known at T_val and T_test, 4 at T_test only, 5 at neither (first seen after T_test)
    first = np.r_[[2, 2, 2, 7, 20], np.ones(N_ITEMS - 5, np.int64)]
    catalogue_table(pd.DataFrame({"item": np.arange(1, N_ITEMS + 1), "timestamp": first}), N_ITEMS, 5, 10) \
        .to_parquet(tmp_path / "split/catalogue.parquet")
    (tmp_path / "params.yaml").write_text("evaluate:\n  ks: [5, 10, 20]\n")
    (tmp_path / "results/r/run.json").write_text(json.dumps({"name": "r", "protocol": "gts"}))
    return tmp_path


def _argv(root: Path) -> list[str]:
    return ["--run-info", str(root / "results/r/run.json"), "--split-dir", str(root / "split"),
            "--items", str(root / "items.parquet"), "--recs-dir", str(root / "recs"),
            "--metrics", str(root / "metrics/eval/r.json"), "--per-user", str(root / "results/r/ranks.parquet"),
            "--params", str(root / "params.yaml")]


def test_stage_end_to_end(stage, workspace):
    stage.main(_argv(workspace))
    flat = json.loads((workspace / "metrics/eval/r.json").read_text())
    assert flat["run"] == "r" and flat["protocol"] == "gts" and flat["test/users"] == 150
    assert flat["test/hr@10"] > 0.5  # half the targets are put first
    ranks = pd.read_parquet(workspace / "results/r/ranks.parquet")
    assert len(ranks) == 300 and ranks["rank"].dtype == np.int16
    test = ranks[ranks["split"] == "test"]
    assert test["user"].tolist() == pd.read_parquet(workspace / "split/test.parquet")["user"].tolist()
    assert ((test["rank"] >= 1) & (test["rank"] <= 10)).mean() == pytest.approx(flat["test/hr@10"], abs=1e-6)
    # the knowable pool: untrained items (1-5) known at the list's cut-off
    assert flat["test/cold_pool/knowable/items"] == 4 and flat["val/cold_pool/knowable/items"] == 3
    assert flat["test/catalogue_items"] == N_ITEMS - 1 and flat["protocol_version"] == 2
    assert {"pool_knowable", "control_knowable/hr@10", "target_unreachable"} <= set(ranks.columns)


def test_stage_names_a_missing_user_or_file(stage, workspace):
    path = workspace / "recs/test.parquet"
    pd.read_parquet(path).iloc[1:].to_parquet(path)
    with pytest.raises(SystemExit, match=r"run 'r'.*test recommendations.*no row"):
        stage.main(_argv(workspace))
    path.unlink()
    with pytest.raises(SystemExit, match="input not found: .*recs/test.parquet"):
        stage.main(_argv(workspace))
    assert not (workspace / "metrics/eval/r.json").exists()


def test_cold_control_by_hand():
    pool = np.zeros(11, dtype=bool)
    pool[[7, 8, 9, 10]] = True
    top = np.array([[2, 8, 3, 10], [8, 2, 3, 4]])
    ctl = cold_control(top, [[7, 1], [5]], np.array([9, 1]), pool, [2, 4])
    # user 0: 3 unseen pool items (7 is seen), target 9 reachable, pool items at ranks 2 and 4
    assert ctl["reachable"].tolist() == [True, False]
    assert ctl["cold_slots@2"].tolist() == [1, 1] and ctl["cold_slots@4"].tolist() == [2, 1]
    assert ctl["hr@4"][0] == pytest.approx(2 / 3) and ctl["hr@2"][0] == pytest.approx(1 / 3)
    assert ctl["ndcg@4"][0] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / 3)
    assert ctl["mrr@4"][0] == pytest.approx((1 / 2 + 1 / 4) / 3)
    assert ctl["hr@4"][1] == 0.0 and ctl["ndcg@4"][1] == 0.0  # a warm target is never reached by chance


def test_cold_control_matches_random_refills():
    """The exact expectation equals the mean over many random refills of the same slots."""
    rng = np.random.default_rng(0)
    n, n_users = 30, 40
    pool = np.zeros(n + 1, dtype=bool)
    pool[rng.choice(np.arange(1, n + 1), 8, replace=False)] = True
    hist = [rng.choice(np.arange(1, n + 1), 4, replace=False) for _ in range(n_users)]
    targets = np.array([rng.choice(np.setdiff1d(np.flatnonzero(pool), h)) if u % 2 else rng.integers(1, n + 1)
                        for u, h in enumerate(hist)])
    top = np.stack([rng.choice(np.setdiff1d(np.arange(1, n + 1), h), 6, replace=False) for h in hist])
    ctl = cold_control(top, hist, targets, pool, [6])
    hits, ndcg = np.zeros(n_users), np.zeros(n_users)
    draws = 4000
    for u in range(n_users):
        slots = np.flatnonzero(pool[top[u]])
        cand = np.setdiff1d(np.flatnonzero(pool), hist[u])
        for _ in range(draws):
            fill = rng.choice(cand, len(slots), replace=False)
            pos = slots[fill == targets[u]]
            hits[u] += len(pos) > 0
            ndcg[u] += (1 / np.log2(pos + 2)).sum()
    assert np.abs(ctl["hr@6"] - hits / draws).max() < 0.03
    assert np.abs(ctl["ndcg@6"] - ndcg / draws).max() < 0.03
    assert ctl["hr@6"].mean() == pytest.approx(hits.mean() / draws, abs=0.005)


def test_cold_pools_and_control_metrics_in_the_run_evaluation():
    known = np.r_[False, np.ones(10, bool)]  # every item known at both cut-offs ...
    known_val = known.copy()
    known_val[9] = False  # ... but item 9 is first seen between T_val and T_test
    pools = cold_pools(("knowable",), {"val": known_val, "test": known},
                       {"val": np.array([1, 2, 3]), "test": np.array([1, 2, 3])})
    assert np.flatnonzero(pools["knowable"]["test"]).tolist() == list(range(4, 11))
    assert 9 not in np.flatnonzero(pools["knowable"]["val"])
    with pytest.raises(ValueError, match="unknown cold pool 'untrained'"):  # the future-selected pool is gone
        cold_pools(("untrained",), {"test": known}, {"test": np.array([1])})
    truth = pd.DataFrame({"user": [0, 1], "history": [[1], [2]], "target": [9, 3], "target_timestamp": [0, 0],
                          "history_length": [1, 1], "target_cold": [True, False], "user_cold": [False, False]})
    recs = {s: pd.DataFrame({"user": [0, 1], "items": [[4, 9, 2], [3, 5, 6]]}) for s in ("val", "test")}
    ev = evaluate_run({"val": truth, "test": truth}, recs, pd.DataFrame({"item": np.arange(1, 11)}),
                      EvaluateConfig(ks=(1, 2), control_k=2), pools=pools)
    m = ev.metrics
    # knowable test pool = 4..10 (7 items, none seen); user 0's list has pool items at ranks 1 and 2
    assert m["test/cold_pool/knowable/targets"] == 1 and m["test/cold_pool/knowable/model/hr@2"] == 1.0
    assert m["test/cold_pool/knowable/control/hr@2"] == pytest.approx(2 / 7)
    assert m["test/cold_pool/knowable/cold_slots@2"] == pytest.approx((2 + 1) / 2)  # user 1: 5 at rank 2
    assert m["val/cold_pool/knowable/targets"] == 0  # item 9 is not in the validation pool
    test = ev.per_user[ev.per_user["split"] == "test"]
    assert test["pool_knowable"].tolist() == [True, False]
    assert test["control_knowable/hr@2"].tolist() == pytest.approx([2 / 7, 0.0])


def test_catalogue_removes_unknown_items_and_unreachable_targets_are_misses():
    """A list may hold only items known at its cut-off; a target outside it is a miss for any list."""
    truth = pd.DataFrame({"user": [0, 1, 2], "history": [[1], [2], [1]], "target": [9, 3, 5],
                          "target_timestamp": [0, 0, 0], "history_length": [1, 1, 1],
                          "target_unreachable": [True, False, False],
                          "target_cold": [False, False, False], "user_cold": [False, False, False]})
    recs = {s: pd.DataFrame({"user": [0, 1, 2], "items": [[9, 4, 2], [8, 3, 6], [8, 5, 6]]}) for s in ("val", "test")}
    known = np.r_[False, np.ones(10, bool)]
    known[[8, 9]] = False  # items 8 and 9 appear after the cut-off
    ev = evaluate_run({"val": truth, "test": truth}, recs, pd.DataFrame({"item": np.arange(1, 11)}),
                      EvaluateConfig(ks=(1, 2), control_k=2), catalogues={"val": known, "test": known})
    m = ev.metrics
    assert m["test/off_catalogue_items"] == 3 and m["test/catalogue_items"] == 8
    assert m["test/hr@1"] == pytest.approx(2 / 3)  # users 1 and 2: 3 and 5 move up to rank 1
    assert m["test/unreachable_target/users"] == 1 and m["test/unreachable_target/hr@2"] == 0.0
    assert m["test/warm_target/users"] == 2
    test = ev.per_user[ev.per_user["split"] == "test"]
    assert test["target_unreachable"].tolist() == [True, False, False] and test["rank"].tolist() == [0, 1, 1]
    everything = evaluate_run({"val": truth, "test": truth}, recs, pd.DataFrame({"item": np.arange(1, 11)}),
                              EvaluateConfig(ks=(1, 2), control_k=2))
    assert everything.metrics["test/hr@1"] == pytest.approx(1 / 3)  # without the catalogue 9 and 8 take rank 1
