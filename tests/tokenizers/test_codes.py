"""Collision level, token layout and diagnostics of Semantic IDs, on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from lib.tokenizers.codes import (
    SPECIAL_TOKENS,
    check_embeddings,
    code_tokens,
    collision_level,
    collision_stats,
    fit_item_ids,
    level_stats,
    semantic_ids,
    token_layout,
)

# items 1..6; items 1, 3, 5 share (0, 1) and items 2, 6 share (2, 3)
RAW = np.array([[0, 1], [2, 3], [0, 1], [1, 1], [0, 1], [2, 3]])


def test_extra_level_numbers_items_within_a_group_in_id_order():
    assert collision_level(RAW).tolist() == [0, 0, 1, 0, 2, 1]
    codes, meta, diag = semantic_ids(RAW, [4, 4], "test")
    assert codes.shape == (7, 3) and codes.dtype == np.int64
    assert codes[0].tolist() == [-1, -1, -1]
    assert codes[1:].tolist() == [[0, 1, 0], [2, 3, 0], [0, 1, 1], [1, 1, 0], [0, 1, 2], [2, 3, 1]]
    assert len({tuple(r) for r in codes[1:]}) == 6
    assert meta["codebook_sizes"] == [4, 4, 3] and meta["levels"] == 2 and meta["n_levels"] == 3
    assert diag["collision_rate"] == pytest.approx(5 / 6)
    assert (diag["colliding_groups"], diag["largest_group"], diag["unique_prefixes"]) == (2, 3, 3)


def test_no_collisions_gives_a_zero_extra_level_of_size_one():
    raw = np.array([[0, 0], [0, 1], [1, 0]])
    codes, meta, diag = semantic_ids(raw, [2, 2], "test")
    assert codes[1:, -1].tolist() == [0, 0, 0]
    assert meta["codebook_sizes"] == [2, 2, 1] and diag["collision_rate"] == 0.0 and diag["largest_group"] == 1


def test_extra_level_is_order_stable_and_unique_on_random_codes(rng):
    raw = rng.integers(0, 3, size=(500, 2))  # 9 prefixes for 500 items: big groups
    rank = collision_level(raw)
    full = np.c_[raw, rank]
    assert len(np.unique(full, axis=0)) == 500
    for prefix in np.unique(raw, axis=0):  # ranks are 0..g-1 in item order
        assert rank[(raw == prefix).all(1)].tolist() == list(range(int((raw == prefix).all(1).sum())))


def test_token_offsets_keep_special_tokens_free_and_ranges_disjoint():
    sizes = [4, 3, 2]
    offsets, vocab = token_layout(sizes)
    assert offsets == [3, 7, 10] and vocab == 12
    codes = np.array([[-1, -1, -1], [0, 0, 0], [3, 2, 1], [1, 1, 0]])
    tokens = code_tokens(codes, offsets)
    assert tokens[0].tolist() == [SPECIAL_TOKENS["pad"]] * 3
    assert (tokens[1:] >= len(SPECIAL_TOKENS)).all() and (tokens[1:] < vocab).all()
    ranges = [set(range(o, o + s)) for o, s in zip(offsets, sizes, strict=True)]
    assert all(not (a & b) for i, a in enumerate(ranges) for b in ranges[i + 1:])
    for j in range(3):
        assert set(tokens[1:, j]) <= ranges[j]
    _, meta, _ = semantic_ids(RAW, [4, 4], "test")
    assert meta["token_offsets"] == [3, 7, 11] and meta["vocab_size"] == 3 + 4 + 4 + 3
    assert meta["special_tokens"] == {"pad": 0, "bos": 1, "eos": 2}


def test_level_stats_usage_and_perplexity():
    raw = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])
    stats = level_stats(raw, [4, 8])
    assert stats["level_0"] == {"codes_used": 4, "usage": 1.0, "perplexity": 4.0}  # uniform: perplexity = size
    assert stats["level_1"] == {"codes_used": 1, "usage": 0.125, "perplexity": 1.0}  # collapsed


def test_collision_stats_counts_items_not_groups():
    stats = collision_stats(np.array([[0], [0], [1], [2], [2], [2], [3]]))
    assert stats == {"collision_rate": pytest.approx(5 / 7, abs=1e-6), "colliding_groups": 2,
                     "largest_group": 3, "unique_prefixes": 4}


def test_semantic_ids_rejects_codes_outside_the_codebooks():
    with pytest.raises(ValueError, match="outside"):
        semantic_ids(np.array([[0, 4]]), [4, 4], "test")
    with pytest.raises(ValueError, match="shape"):
        semantic_ids(np.array([[0, 1]]), [4, 4, 4], "test")


def test_check_embeddings():
    emb = np.zeros((4, 5), dtype=np.float32)
    emb[1:] = 1.0
    check_embeddings(emb, 3, 5)
    with pytest.raises(ValueError, match="expected \\(5, dim\\)"):
        check_embeddings(emb, 4)
    with pytest.raises(ValueError, match="dim=6"):
        check_embeddings(emb, 3, 6)
    emb[0, 2] = 0.1
    with pytest.raises(ValueError, match="row 0"):
        check_embeddings(emb, 3)


def test_fit_item_ids():
    assert fit_item_ids(5, "train", np.array([4, 2, 2, 4, 1])).tolist() == [1, 2, 4]
    assert fit_item_ids(3, "all").tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="outside the catalogue"):
        fit_item_ids(3, "train", np.array([1, 4]))
    with pytest.raises(ValueError, match="needs"):
        fit_item_ids(3, "train")


def test_fit_item_ids_under_a_catalogue():
    """all = every item only where every item is known at the training cut-off (leave-one-out); a temporal
    catalogue with a future item makes it an error, and training items must all be known."""
    known = np.array([False, True, True, True, False, True])  # item 4 first seen after the cut-off
    assert fit_item_ids(5, "train", np.array([1, 2, 5]), known).tolist() == [1, 2, 5]
    assert fit_item_ids(5, "all", known=np.r_[False, np.ones(5, bool)]).tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="fit_items=all would fit the tokenizer on 1 of 5 items unknown"):
        fit_item_ids(5, "all", known=known)
    with pytest.raises(ValueError, match="1 training items are unknown"):
        fit_item_ids(5, "train", np.array([1, 4]), known)
    with pytest.raises(ValueError, match="4 flags for 5 items"):
        fit_item_ids(5, "train", np.array([1]), known[:4])


def test_collision_level_follows_arrival_order():
    # items 1, 3, 5 share (0, 1) and 2, 6 share (2, 3); item 1 arrives last, after 3 and 5
    arrival = np.array([3, 5, 2, 4, 6, 1])
    assert collision_level(RAW, arrival).tolist() == [2, 0, 0, 0, 1, 1]
    assert collision_level(RAW, np.arange(1, 7)).tolist() == collision_level(RAW).tolist()  # id order = default
    codes, meta, _ = semantic_ids(RAW, [4, 4], "test", order=arrival)
    assert codes[1:, -1].tolist() == [2, 0, 0, 0, 1, 1] and meta["collision_order"] == "arrival"
    assert semantic_ids(RAW, [4, 4], "test")[1]["collision_order"] == "item_id"
    with pytest.raises(ValueError, match="each item id 1..6 once"):
        collision_level(RAW, np.array([1, 2, 3, 4, 5, 5]))


def test_a_later_arrival_never_renumbers_the_items_before_it(rng):
    """The level of the first k arrivals, computed with only them in the catalogue, is their level with
    every later item added too: a known item's ID never changes when new items arrive (whatever their ids)."""
    raw = rng.integers(0, 3, size=(300, 2))  # big collision groups
    arrival = rng.permutation(300) + 1
    full = collision_level(raw, arrival)
    for k in (1, 50, 299):
        early = arrival[:k]
        assert np.array_equal(collision_level(raw[early - 1], np.arange(1, k + 1)), full[early - 1])
