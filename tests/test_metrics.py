"""lib.metrics: HR/NDCG/MRR/coverage on hand-computed cases, seen-item filtering, agreement with sklearn."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from lib.metrics import PAD, coverage, hit_rate, mrr, ndcg, per_user_metrics, target_ranks, top_k


def _scores(recs: list[list[int]], targets: list[int], k: int, seen=None) -> dict[str, np.ndarray]:
    ranks = target_ranks(top_k(recs, 5, seen), np.array(targets))
    return {"hr": hit_rate(ranks, k), "ndcg": ndcg(ranks, k), "mrr": mrr(ranks, k)}


def test_rank_one_three_and_absent_by_hand():
    recs = [[7, 3, 5], [1, 2, 9, 4], [1, 2, 3]]
    targets = [7, 9, 10]  # rank 1, rank 3, not in the list
    ranks = target_ranks(top_k(recs, 5), np.array(targets))
    np.testing.assert_array_equal(ranks, [1.0, 3.0, np.inf])
    at5 = _scores(recs, targets, 5)
    np.testing.assert_allclose(at5["hr"], [1, 1, 0])
    np.testing.assert_allclose(at5["ndcg"], [1.0, 0.5, 0.0])  # 1/log2(3+1) = 1/2
    np.testing.assert_allclose(at5["mrr"], [1.0, 1 / 3, 0.0])
    at2 = _scores(recs, targets, 2)  # rank 3 falls outside K = 2
    np.testing.assert_allclose(at2["hr"], [1, 0, 0])
    np.testing.assert_allclose(at2["ndcg"], [1, 0, 0])
    np.testing.assert_allclose(at2["mrr"], [1, 0, 0])


def test_short_list_is_padded_and_a_miss():
    top = top_k([[4, 2], []], 3)
    np.testing.assert_array_equal(top, [[4, 2, PAD], [PAD, PAD, PAD]])
    np.testing.assert_array_equal(target_ranks(top, np.array([9, 1])), [np.inf, np.inf])


def test_seen_items_filtered_move_target_up():
    recs, history, target = [[4, 2, 8, 5, 6]], [[2, 4, 4]], [8]
    np.testing.assert_array_equal(top_k(recs, 3, history), [[8, 5, 6]])
    on = _scores(recs, target, 2, seen=history)  # 8 moves from rank 3 to rank 1
    np.testing.assert_allclose([on["hr"][0], on["ndcg"][0], on["mrr"][0]], [1, 1, 1])
    off = _scores(recs, target, 5)  # the off switch keeps rank 3
    np.testing.assert_allclose([off["hr"][0], off["ndcg"][0], off["mrr"][0]], [1, 0.5, 1 / 3])
    assert _scores(recs, target, 2)["hr"][0] == 0


def test_seen_filter_is_per_user():
    # item 3 is seen by user 0 only: user 1 keeps it
    top = top_k([[3, 1, 2], [3, 1, 2]], 2, [[3], [5]])
    np.testing.assert_array_equal(top, [[1, 2], [3, 1]])


def test_coverage_by_hand():
    top = np.array([[1, 2, 5], [2, 3, PAD]])
    assert coverage(top, 1, 10) == pytest.approx(2 / 10)  # {1, 2}
    assert coverage(top, 2, 10) == pytest.approx(3 / 10)  # {1, 2, 3}
    assert coverage(top, 3, 10) == pytest.approx(4 / 10)  # {1, 2, 3, 5}; padding is not an item


def test_per_user_columns():
    frame = per_user_metrics(np.array([1.0, np.inf]), [1, 5])
    assert list(frame.columns) == ["hr@1", "hr@5", "ndcg@1", "ndcg@5", "mrr@1", "mrr@5"]
    np.testing.assert_allclose(frame.iloc[1], 0.0)


@pytest.mark.parametrize("k", [1, 3, 10, 30])
def test_mean_ndcg_matches_sklearn(rng, k):
    n_users, n_items = 40, 30
    scores = rng.random((n_users, n_items))  # column j scores item j + 1; continuous, so no ties
    recs = list(np.argsort(-scores, axis=1) + 1)
    targets = rng.integers(1, n_items + 1, size=n_users)
    relevance = np.zeros_like(scores)
    relevance[np.arange(n_users), targets - 1] = 1.0
    ours = ndcg(target_ranks(top_k(recs, k), targets), k).mean()
    assert ours == pytest.approx(ndcg_score(relevance, scores, k=k))
