"""Semantic-ID vocabulary and prefix trie: token layout, validity, exact seen-item exhaustion."""
import numpy as np
import pytest

from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab
from tests.sid.conftest import N_ITEMS, sid_codes


def test_tokens_never_hit_special_tokens_and_ranges_are_disjoint(sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta, user_buckets=5)
    tok = v.item_tokens()
    assert (tok[0] == v.pad).all()
    assert tok[1:].min() > max(v.pad, v.bos, v.eos)
    for j in range(v.n_levels):  # column j's tokens stay inside its own range
        assert np.all((tok[1:, j] >= v.offsets[j]) & (tok[1:, j] < v.offsets[j] + v.sizes[j]))
    masks = v.column_masks()
    assert masks.sum(axis=0).max() == 1 and masks.sum() == sum(v.sizes)
    assert v.vocab_size == meta["vocab_size"] + 5
    seq = v.sequence(np.array([3, 7]), user=11)
    assert len(seq) == v.prefix_len + 2 * v.n_levels and seq[0] == v.bos
    assert meta["vocab_size"] <= seq[1] < v.vocab_size  # hashed user token after the code tokens
    assert list(seq[2:5]) == list(tok[3])


def test_vocab_rejects_duplicate_ids_and_overlapping_ranges(sid_world):
    codes, meta = sid_world
    dup = codes.copy()
    dup[2] = dup[1]
    with pytest.raises(ValueError, match="not unique"):
        SidVocab.from_meta(dup, meta)
    with pytest.raises(ValueError, match="overlap"):
        SidVocab.from_meta(codes, {**meta, "token_offsets": [3, 5, 8]})
    with pytest.raises(ValueError, match="padding"):
        SidVocab.from_meta(np.vstack([np.zeros((1, 3), int), codes[1:]]), meta)


def test_trie_reaches_exactly_the_real_items(sid_world):
    codes, meta = sid_world
    trie = SidTrie(codes, meta["codebook_sizes"])
    assert sorted(trie.leaf_item.tolist()) == list(range(1, N_ITEMS + 1))
    assert trie.item_of(codes[1:]).tolist() == list(range(1, N_ITEMS + 1))
    # a prefix no item has, and codes out of range, are not items
    assert trie.item_of(np.array([[3, 2, 1], [0, 0, 5], [-1, 0, 0]])).tolist() == [24, 0, 0]
    fake = np.array([[0, 1, 1]])  # item 5 = codes (0, 1, 1)? hand-check against the fixture
    assert trie.item_of(fake).tolist() == [5]


def test_exhausted_marks_prefixes_whose_items_are_all_seen():
    codes, meta = sid_codes()
    trie = SidTrie(codes, meta["codebook_sizes"])
    # items 1..6 have first code 0; items 1 and 4 share codes (0, 0) (collision level 0 and 1)
    hist = [[1, 4], [1, 2, 3, 4, 5, 6], [1]]
    ex1 = trie.exhausted(hist, 1).numpy()
    ex2 = trie.exhausted(hist, 2).numpy()
    ex3 = trie.exhausted(hist, 3).numpy()
    assert ex1.sum(axis=1).tolist() == [0, 1, 0]  # only user 1 has seen all of first-code 0
    assert ex2[0, trie.node_of[2][1]] and not ex2[2, trie.node_of[2][1]]
    assert ex3.sum(axis=1).tolist() == [2, 6, 1]  # leaves = items
