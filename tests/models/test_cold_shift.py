"""Cold shift (lib/models/recommend.py): hand-computed scores, the validation choice against a brute-force
loop through `recommend` and the evaluator's kernel, and the training stage's use of it."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from lib import metrics
from lib.models.recommend import choose_cold_shift, recommend, shifter
from tests.models.test_seqrec import N_ITEMS, model
from tests.models.test_stage import PARAMS, _inputs, _run
from tests.models.test_training import N_ITEMS as STAGE_ITEMS


def test_shift_adds_the_users_score_sd_to_cold_items_only():
    scores = torch.tensor([[float("-inf"), 1.0, 2.0, 3.0, 4.0],
                           [float("-inf"), 0.0, 0.0, 2.0, 2.0]])
    cold = np.array([False, True, False, False, True])
    out = shifter(cold, 2.0)(scores)
    sd = np.array([np.std([1, 2, 3, 4], ddof=1), np.std([0, 0, 2, 2], ddof=1)])  # per user, real items only
    expect = np.array([[1 + 2 * sd[0], 2, 3, 4 + 2 * sd[0]],
                       [0 + 2 * sd[1], 0, 2, 2 + 2 * sd[1]]])
    np.testing.assert_allclose(out[:, 1:].numpy(), expect, rtol=1e-6)
    assert torch.isinf(out[:, 0]).all()  # padding stays unrankable
    assert torch.equal(shifter(cold, 0.0)(scores), scores)


def test_padding_cannot_be_cold():
    with pytest.raises(ValueError, match="row 0"):
        shifter(np.array([True, False, True]), 1.0)


class FixedScores(nn.Module):
    """Scores by user: the first history item selects a fixed row of `table` (U, N+1)."""

    def __init__(self, table: np.ndarray):
        super().__init__()
        self.table = torch.as_tensor(table, dtype=torch.float32)
        self.n_items = table.shape[1] - 1
        self.cfg = type("Cfg", (), {"max_len": 8})()

    def score_last(self, seq, lengths):
        s = self.table[seq[:, 0] - 1].clone()
        s[:, 0] = float("-inf")
        return s


def test_choice_by_hand_and_ties_take_the_smallest_shift():
    n = 12  # items 1..12; item 12 is cold and scores lowest for both users
    base = np.concatenate([[0.0], np.arange(n, 0, -1, dtype=float)])  # item i scores n + 1 - i
    m = FixedScores(np.stack([base, base]))
    cold = np.zeros(n + 1, bool)
    cold[n] = True
    # user A (history item 1) wants the cold item; user B (history item 2) wants item 1, the best warm one
    val = pd.DataFrame({"user": [0, 1], "history": [[1], [2]], "target": [n, 1]})
    best, ndcg = choose_cold_shift(m, val, cold, [0.0, 100.0, 200.0])
    assert ndcg[0.0] == pytest.approx(0.5)  # A misses the top 10, B hits at rank 1
    assert ndcg[100.0] == pytest.approx((1 + 1 / np.log2(3)) / 2)  # the cold item now leads both lists
    assert ndcg[200.0] == ndcg[100.0] and best == 100.0  # tied: the smaller shift


def test_validation_ndcg_equals_recommend_plus_the_evaluator_kernel():
    m = model("sasrec", "content_plus_id", seed=1)
    rng = np.random.default_rng(0)
    hist = [list(rng.choice(np.arange(1, N_ITEMS + 1), size=int(rng.integers(1, 6)), replace=False))
            for _ in range(40)]
    val = pd.DataFrame({"user": np.arange(40), "history": hist, "target": rng.integers(1, N_ITEMS + 1, 40)})
    cold = np.zeros(N_ITEMS + 1, bool)
    cold[rng.choice(np.arange(1, N_ITEMS + 1), 8, replace=False)] = True
    grid = [0.0, 0.5, 1.0, 3.0]
    best, ndcg = choose_cold_shift(m, val, cold, grid, batch_size=7)  # batches must not matter
    for b in grid:
        recs = recommend(m, val, top_k=10, progress=False, adjust=shifter(cold, b))
        ranks = metrics.target_ranks(metrics.top_k(list(recs["items"]), 10, seen=hist), val["target"].to_numpy())
        assert ndcg[b] == pytest.approx(metrics.ndcg(ranks, 10).mean(), abs=1e-12)
    assert ndcg[best] == max(ndcg.values())


def test_stage_decodes_both_splits_with_the_shift_chosen_on_validation(tmp_path):
    params = {**PARAMS, "runs": {"code_rankers": {
        "plain": {"backbone": "sasrec", "representation": "sid_plus_id", "tokenizer": "t", "protocol": "gts"},
        "shifted": {"backbone": "sasrec", "representation": "sid_plus_id", "tokenizer": "t", "protocol": "gts",
                    "set": {"cold_shift": [1000.0]}}}}}
    lists, facts = {}, {}
    for run in ("plain", "shifted"):
        d = tmp_path / run
        d.mkdir()
        args = _inputs(d)  # the last item has no training interaction: the only cold item
        (d / "params.yaml").write_text(yaml.safe_dump(params))
        p = _run(args + ["--run", run, "--codes", str(d / "codes")], d)
        assert p.returncode == 0, p.stderr[-3000:]
        lists[run] = {s: [list(x) for x in pd.read_parquet(d / f"recs/{s}.parquet")["items"]] for s in ("val", "test")}
        rules = json.loads((d / "run.json").read_text())["rules"]
        facts[run] = json.loads((d / "m.json").read_text()) | {"rules": rules}
    assert "cold_shift" not in facts["plain"]  # the default decodes as scored and searches nothing
    assert facts["shifted"]["cold_shift"] == 1000.0 and list(facts["shifted"]["cold_shift_val_ndcg@10"]) == ["1000"]
    assert facts["plain"]["rules"] == [] and facts["shifted"]["rules"] == ["cold_shift"]  # a rule run says so
    # the cold item is first seen between T_val and T_test: only test lists may hold it, and the huge shift
    # puts it first there; validation lists cannot reach it, so the shift changes nothing in them
    assert all(x[0] == STAGE_ITEMS for x in lists["shifted"]["test"])
    assert all(STAGE_ITEMS not in x for x in lists["shifted"]["val"])
    assert lists["plain"]["test"] != lists["shifted"]["test"] and lists["plain"]["val"] == lists["shifted"]["val"]
