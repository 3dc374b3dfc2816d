"""The generator over a catalogue (lib/catalogue.py): the trie, the search, training and the cold rule see
only the items known at their cut-off, and an item outside it is never generated."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from lib.cold import knowable_pool
from lib.sid.beam import beam_search
from lib.sid.config import DecodeConfig
from lib.sid.data import SidSequenceDataset
from lib.sid.recommend import decode_users, rule_candidates
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab
from tests.sid.conftest import N_ITEMS, cycle_split
from tests.sid.test_generation import config, random_model

UNKNOWN = [4, 11, 24]  # items no cut-off knows: 4 shares codes (0, 0) with item 1, 11 shares (1, 1) with 8


def catalogue_mask(excluded=UNKNOWN, n=N_ITEMS) -> np.ndarray:
    keep = np.ones(n + 1, dtype=bool)
    keep[0] = False
    keep[list(excluded)] = False
    return keep


def test_a_catalogue_trie_holds_only_its_items(sid_world):
    codes, meta = sid_world
    trie = SidTrie(codes, meta["codebook_sizes"], catalogue_mask())
    known = sorted(set(range(1, N_ITEMS + 1)) - set(UNKNOWN))
    assert sorted(trie.leaf_item.tolist()) == known and trie.items[1:].sum() == len(known)
    for d in range(trie.n_levels + 1):
        assert (trie.node_of[d][UNKNOWN] == -1).all() and (trie.node_of[d][known] >= 0).all()
    assert trie.item_of(codes[UNKNOWN]).tolist() == [0, 0, 0]  # their code tuples name no item of it
    assert trie.item_of(codes[known]).tolist() == known
    # item 1 is alone under (0, 0) once item 4 is unknown: seeing it exhausts that prefix
    ex2 = trie.exhausted([[1], [1, 4]], 2).numpy()
    assert ex2[0, trie.node_of[2][1]] and ex2[1, trie.node_of[2][1]]
    assert not SidTrie(codes, meta["codebook_sizes"]).exhausted([[1]], 2).numpy()[0].any()  # item 4 known there
    with pytest.raises(ValueError, match="no item"):
        SidTrie(codes, meta["codebook_sizes"], np.zeros(N_ITEMS + 1, dtype=bool))


@pytest.mark.parametrize("trie_softmax", [True, False])
def test_full_width_search_over_a_catalogue_returns_exactly_its_unseen_items(sid_world, trie_softmax):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    model = random_model(v, seed=2, trie_softmax=trie_softmax)
    trie = SidTrie(codes, v.sizes, catalogue_mask())
    hist = [[1, 2], [9, 20]]
    prompts = torch.tensor(np.stack([v.sequence(np.array(h), 0) for h in hist]))
    ex = [trie.exhausted(hist, d) for d in range(1, v.n_levels + 1)]
    items, scores, _ = beam_search(model, prompts, trie, v.offsets.tolist(), N_ITEMS, ex)
    for b, h in enumerate(hist):
        got = [i for i in items[b].tolist() if i]
        assert sorted(got) == sorted(set(range(1, N_ITEMS + 1)) - set(UNKNOWN) - set(h))
    if trie_softmax:  # without exclusion, the item probabilities are a distribution over the catalogue
        _, scores, _ = beam_search(model, prompts, trie, v.offsets.tolist(), N_ITEMS)
        assert torch.exp(scores).sum(1).tolist() == pytest.approx([1.0, 1.0], abs=1e-4)


def test_training_loss_is_the_nll_over_the_training_catalogue(sid_world):
    """trie_softmax under the training catalogue: the loss of an item is minus its search score over that
    catalogue, so an unknown item sharing its prefix takes no probability mass."""
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    model = random_model(v, seed=5)
    known, full = SidTrie(codes, v.sizes, catalogue_mask()), SidTrie(codes, v.sizes)
    prompt = torch.tensor(v.sequence(np.array([3]), 0))[None]
    losses = {}
    for name, trie in (("known", known), ("full", full)):
        ds = SidSequenceDataset(np.array([0]), [np.array([3, 1])], v, trie.node_of)
        inp, tgt, col, node = ds.collate([ds[0]])
        col[0, :3] = -1  # score only item 1, given bos + item 3
        with torch.no_grad():
            losses[name] = model.loss(inp, tgt, col, node, trie.children)
        items, scores, _ = beam_search(model, prompt, trie, v.offsets.tolist(), N_ITEMS)
        torch.testing.assert_close(losses[name], -scores[0][items[0] == 1][0], atol=1e-4, rtol=1e-4)
    assert losses["known"] < losses["full"]  # item 4 (same (0, 0) prefix) no longer shares the mass


def test_a_training_item_outside_the_training_catalogue_is_an_error(sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    trie = SidTrie(codes, v.sizes, catalogue_mask())
    with pytest.raises(ValueError, match="outside the training catalogue"):
        SidSequenceDataset(np.array([0]), [np.array([3, 4])], v, trie.node_of)


def test_the_cold_rule_injects_only_items_of_the_list_catalogue(sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    model = random_model(v, seed=1)
    trie = SidTrie(codes, v.sizes, catalogue_mask())
    pool = np.zeros(N_ITEMS + 1, dtype=bool)
    pool[[4, 5, 10, 11, 24]] = True  # a pool wider than the catalogue: 4, 11 and 24 must never come in
    assert rule_candidates(pool, trie).tolist() == [5, 10] == rule_candidates(np.array([24, 10, 5, 4]), trie).tolist()
    users, hist = np.arange(4), [[1, 2], [13, 14], [6, 7], [20, 21]]
    plain = replace(config(), decode=DecodeConfig(beam_width=4, batch_size=4), top_k=4)
    rule = replace(plain, decode=replace(plain.decode, cold_every=2, cold_prefix=1))
    before, _ = decode_users(model, v, trie, users, hist, plain, cold_items=pool)
    after, _ = decode_users(model, v, trie, users, hist, rule, cold_items=pool)
    injected = set()
    for a, b in zip(after, before, strict=True):
        assert not set(a.tolist()) & set(UNKNOWN) and len(a) == 4
        injected |= set(a.tolist()) - set(b.tolist())
    assert injected and injected <= {5, 10}  # what the rule adds comes from the pool, inside the catalogue


def test_fit_trains_on_the_training_catalogue_and_validates_over_the_validation_catalogue(tmp_path, sid_world,
                                                                                         monkeypatch):
    import lib.sid.training as training
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    train, val = cycle_split(n_users=20)
    train = train[~train["item"].isin([*UNKNOWN, 7])]  # 7: known at the validation cut-off, never trained
    train_cat, val_cat = catalogue_mask(), catalogue_mask()
    train_cat[7] = False  # the two tries must differ, or validating over the training trie would go unnoticed
    seen_tries, decode = [], training.decode_users

    def spy(model, vocab, trie, *a, **k):
        seen_tries.append(trie.items.copy())
        return decode(model, vocab, trie, *a, **k)

    monkeypatch.setattr(training, "decode_users", spy)
    module, _ = training.fit(config(max_epochs=2, val_every=1), v, meta, train, val, str(tmp_path / "ck"),
                             progress=False, catalogue=train_cat, val_candidates=val_cat)
    assert np.array_equal(module.trie.items, train_cat) and np.array_equal(module.val_trie.items, val_cat)
    assert seen_tries and all(np.array_equal(t, val_cat) for t in seen_tries)
    assert np.flatnonzero(module.cold_items).tolist() == [7]  # the knowable pool: known, never trained
    assert np.array_equal(module.cold_items, knowable_pool(val_cat, train["item"].unique()))
    # a training item outside the training catalogue: an error, not a silent mask
    with pytest.raises(ValueError, match="outside the training catalogue"):
        training.fit(config(max_epochs=1), v, meta, cycle_split(n_users=20)[0], val, str(tmp_path / "ck2"),
                     progress=False, catalogue=train_cat)
