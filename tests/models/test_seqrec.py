"""SeqRec: item representations reach the scores, padding is inert, models can learn."""
import numpy as np
import pandas as pd
import pytest
import torch

from lib.models.config import ModelConfig
from lib.models.data import NextItemDataset, pad, training_sequences
from lib.models.item_repr import ItemFeatures, compact_ngrams
from lib.models.recommend import list_lengths, recommend
from lib.models.seqrec import SeqRec

N_ITEMS = 30
REPRS = ["id", "content_init", "content", "content_plus_id", "sid_unigram", "sid_bigram", "sid_plus_id"]
CFG = ModelConfig(d_model=16, n_layers=1, n_heads=2, dropout=0.0, max_len=8, adapter_hidden=0)


def content(seed=0, n=N_ITEMS, c=12):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n + 1, c)).astype(np.float32)
    x[0] = 0
    return x


def codes(seed=0, n=N_ITEMS, levels=3, k=4):
    """(n+1, levels) random codes, row 0 = -1 (padding), as the tokenizer writes them."""
    c = np.random.default_rng(seed).integers(0, k, size=(n + 1, levels))
    c[0] = -1
    return c


def model(backbone, rep, emb=None, seed=0, sid=None, warm=None, cfg=CFG):
    torch.manual_seed(seed)
    features = ItemFeatures(content=content() if emb is None else emb, codes=codes() if sid is None else sid,
                            warm=warm)
    return SeqRec(backbone, rep, N_ITEMS, cfg, features).eval()


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
@pytest.mark.parametrize("rep", REPRS)
def test_padding_row_is_zero_and_scores_exclude_padding(backbone, rep):
    m = model(backbone, rep)
    assert torch.all(m.items()[0] == 0)
    seq, lengths = pad([np.array([1, 2, 3]), np.array([4])])
    s = m.score_last(seq, lengths)
    assert s.shape == (2, N_ITEMS + 1)
    assert torch.isneginf(s[:, 0]).all() and torch.isfinite(s[:, 1:]).all()


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
@pytest.mark.parametrize("rep", ["content", "content_plus_id", "content_init"])
def test_content_reaches_the_scores(backbone, rep):
    """The bug seen before: content stored where the forward pass never reads it."""
    seq, lengths = pad([np.array([1, 2, 3])])
    a = model(backbone, rep, content(0)).score_last(seq, lengths)
    b = model(backbone, rep, content(1)).score_last(seq, lengths)
    assert not torch.allclose(a[:, 1:], b[:, 1:])


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
def test_id_model_ignores_content(backbone):
    seq, lengths = pad([np.array([1, 2, 3])])
    a = model(backbone, "id", content(0)).score_last(seq, lengths)
    b = model(backbone, "id", content(1)).score_last(seq, lengths)
    assert torch.equal(a, b)


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
def test_right_padding_does_not_change_scores_or_loss(backbone):
    m = model(backbone, "content_plus_id")
    short, ls = pad([np.array([5, 6, 7])])
    long_ = torch.cat([short, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    assert torch.allclose(m.score_last(short, ls)[:, 1:], m.score_last(long_, ls)[:, 1:], atol=1e-5)
    inp, tgt = NextItemDataset.collate([np.array([5, 6, 7, 8])])
    pad_inp = torch.cat([inp, torch.zeros(1, 3, dtype=torch.long)], 1)
    pad_tgt = torch.cat([tgt, torch.zeros(1, 3, dtype=torch.long)], 1)
    assert torch.allclose(m.loss(inp, tgt), m.loss(pad_inp, pad_tgt), atol=1e-6)


def test_causal_future_items_do_not_change_earlier_states():
    m = model("sasrec", "id")
    e = m.items()
    a = m.hidden(torch.tensor([[1, 2, 3, 4]]), e)
    b = m.hidden(torch.tensor([[1, 2, 9, 10]]), e)
    assert torch.allclose(a[:, :2], b[:, :2], atol=1e-6)
    assert not torch.allclose(a[:, 2:], b[:, 2:])


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_overfits_a_deterministic_successor(backbone, loss):
    """Item i is always followed by i+1: a few hundred steps must learn it."""
    torch.manual_seed(0)
    m = SeqRec(backbone, "id", N_ITEMS, CFG)
    seqs = [np.arange(s, s + 6) for s in range(1, N_ITEMS - 5)]
    inp, tgt = NextItemDataset.collate(seqs)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        opt.zero_grad()
        lo = m.loss(inp, tgt, loss)
        first = first if first is not None else lo.item()
        lo.backward()
        opt.step()
    m.eval()
    seq, lengths = pad([np.array([3, 4, 5])])
    assert lo.item() < first / 3
    assert m.score_last(seq, lengths).argmax().item() == 6


def test_training_sequences_keep_the_most_recent_items():
    train = pd.DataFrame({"user": [0] * 12 + [1] * 3 + [2], "item": list(range(1, 13)) + [5, 6, 7] + [9]})
    seqs = training_sequences(train, max_len=8)
    assert [s.tolist() for s in seqs] == [list(range(4, 13)), [5, 6, 7]]  # user 2 has one item: dropped


def test_recommend_lists_are_long_enough_distinct_and_never_padding():
    m = model("sasrec", "id")
    rows = pd.DataFrame({"user": [7, 8], "history": [[1, 2, 2, 3], list(range(1, 20))]})
    out = recommend(m, rows, top_k=5, progress=False)
    assert out["user"].tolist() == [7, 8]
    lens = [len(x) for x in out["items"]]
    assert lens == list(list_lengths(list(rows["history"]), 5, N_ITEMS)) == [8, 24]
    for items in out["items"]:
        assert 0 not in items and len(set(items)) == len(items)


def test_content_init_uses_the_content_geometry():
    rng = np.random.default_rng(0)  # low-rank content (rank 8 < d): PCA keeps all of it
    emb = (rng.normal(size=(N_ITEMS + 1, 8)) @ rng.normal(size=(8, 24))).astype(np.float32)
    emb[0] = 0
    m = model("sasrec", "content_init", emb)
    w = m.items.table.weight.detach().numpy()[1:]
    # PCA keeps pairwise geometry: distances correlate with the content distances
    i, j = np.triu_indices(N_ITEMS, 1)
    d_w = np.linalg.norm(w[i] - w[j], axis=1)
    d_c = np.linalg.norm(emb[1:][i] - emb[1:][j], axis=1)
    assert np.corrcoef(d_w, d_c)[0, 1] > 0.9


def test_wrong_content_shape_is_a_clear_error():
    with pytest.raises(ValueError, match="rows"):
        SeqRec("sasrec", "content", N_ITEMS, CFG, ItemFeatures(content=content(n=N_ITEMS - 1)))
    with pytest.raises(ValueError, match="needs item codes"):
        SeqRec("sasrec", "sid_unigram", N_ITEMS, CFG, ItemFeatures(content=content()))


def test_mlp_adapter_also_carries_content():
    from dataclasses import replace

    cfg = replace(CFG, adapter_hidden=8)
    seq, lengths = pad([np.array([1, 2, 3])])
    a = model("sasrec", "content", content(0), cfg=cfg).score_last(seq, lengths)
    b = model("sasrec", "content", content(1), cfg=cfg).score_last(seq, lengths)
    assert not torch.allclose(a[:, 1:], b[:, 1:])


@pytest.mark.parametrize("pool", [1, 4, 1000])
def test_length_buckets_cover_every_sequence_once(pool):
    from lib.models.data import LengthBucketSampler

    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 50, size=1000).tolist()
    sampler = LengthBucketSampler(lengths, batch_size=32, seed=1, pool=pool)
    first, second = list(sampler), list(sampler)
    for epoch in (first, second):
        assert sorted(i for b in epoch for i in b) == list(range(1000))
        assert len(epoch) == len(sampler)
        assert all(len(b) <= 32 for b in epoch)
    assert first != second  # a new order every epoch
    assert list(LengthBucketSampler(lengths, 32, seed=1, pool=pool)) == first  # reproducible from the seed


def test_length_pools_reduce_padding():
    from lib.models.data import LengthBucketSampler

    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.geometric(0.1, size=4096) + 1, 50)
    def padded(pool):
        return sum(len(b) * lengths[b].max() for b in LengthBucketSampler(lengths.tolist(), 64, 0, pool))
    assert padded(1000) < padded(4) < padded(1)
    spans = [lengths[b].max() - lengths[b].min() for b in LengthBucketSampler(lengths.tolist(), 64, 0, 1000)]
    assert np.median(spans) <= 1  # one big pool: batches of (nearly) one length


def test_compact_ngrams_by_hand():
    c = np.array([[0, 1, 2], [0, 1, 3], [1, 1, 2]])
    assert compact_ngrams(c, 1).tolist() == [[0, 0, 0], [0, 0, 1], [1, 0, 0]]
    # pairs (0,1) (0,1) (1,1) at levels 1-2 and (1,2) (1,3) (1,2) at levels 2-3
    assert compact_ngrams(c, 2).tolist() == [[0, 0], [0, 1], [1, 0]]


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
@pytest.mark.parametrize("rep", ["sid_unigram", "sid_bigram", "sid_plus_id"])
def test_codes_reach_the_scores(backbone, rep):
    seq, lengths = pad([np.array([1, 2, 3])])
    a = model(backbone, rep, sid=codes(0)).score_last(seq, lengths)
    b = model(backbone, rep, sid=codes(1)).score_last(seq, lengths)
    assert not torch.allclose(a[:, 1:], b[:, 1:])


@pytest.mark.parametrize("rep, n", [("sid_unigram", 1), ("sid_bigram", 2)])
def test_sid_item_vector_is_the_sum_of_its_ngram_embeddings(rep, n):
    c = codes(3)
    c[5] = c[7]  # items 5 and 7 share every code: one vector
    m = model("sasrec", rep, sid=c)
    e = m.items().detach()
    assert torch.equal(e[5], e[7]) and not torch.equal(e[5], e[6])
    grams = compact_ngrams(c[1:], n)
    want = sum(m.items.code_tables[j].weight[grams[8 - 1, j]] for j in range(grams.shape[1]))
    assert torch.allclose(e[8], want.detach())
    assert len(m.items.code_tables) == 3 - n + 1 and m.items.table is None  # no per-item parameters


def test_fusion_keeps_cold_id_rows_at_zero_through_training():
    """Items without a training interaction are represented by content/codes alone."""
    warm = np.ones(N_ITEMS + 1, bool)
    warm[[0, 4, 9]] = False  # items 4 and 9 are cold
    for rep, part in (("content_plus_id", "adapter"), ("sid_plus_id", "code_tables")):
        m = model("sasrec", rep, warm=warm).train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-2)
        inp, tgt = NextItemDataset.collate([np.array([1, 2, 3, 4, 9, 5])])
        for _ in range(3):
            opt.zero_grad()
            m.loss(inp, tgt).backward()
            opt.step()
        ids = m.items.table.weight * m.items.id_mask
        assert torch.all(ids[[4, 9]] == 0) and torch.all(ids[[1, 2, 3]] != 0)
        with torch.no_grad():
            m.items.table.weight.zero_()  # what is left is the content/code part alone
            only_part = m.items()
        assert torch.equal(m.items()[4], only_part[4]) and getattr(m.items, part) is not None
    # switched off: the classic learned rows
    off = model("sasrec", "content_plus_id", warm=warm, cfg=CFG.__class__(**{**CFG.__dict__, "zero_cold_ids": False}))
    assert off.items.id_mask is None


def test_code_ngrams_only_cold_items_have_stay_zero():
    c = codes(5, k=6)
    c[9] = [5, 5, 5]  # only item 9 has these codes, and item 9 is cold
    c[c == 5] = 4
    c[9] = [5, 5, 5]
    warm = np.ones(N_ITEMS + 1, bool)
    warm[[0, 9]] = False
    for rep in ("sid_unigram", "sid_bigram"):
        m = model("sasrec", rep, sid=c, warm=warm)
        e = m.items().detach()
        assert torch.all(e[9] == 0) and torch.all(e[1:9].abs().sum(1) > 0)
        free = model("sasrec", rep, sid=c, warm=None).items().detach()
        assert torch.all(free[9] != 0)


def test_mean_pooling_of_a_long_code_is_the_sum_over_its_length():
    """code_pool mean (VQ-Rec-like long codes): the same tables, the vector divided by the number of digits."""
    import dataclasses
    c = codes(4, levels=8, k=16)  # a long parallel code: 8 digits
    s = model("gpt2", "sid_unigram", sid=c)
    m = model("gpt2", "sid_unigram", sid=c, cfg=dataclasses.replace(CFG, code_pool="mean"))
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(s.items.code_tables, m.items.code_tables, strict=True))
    assert torch.allclose(m.items(), s.items() / 8)
    assert torch.equal(m.items()[0], torch.zeros(16))


def _fusion_pair(rep: str, p: float):
    """A fusion model with ID dropout p and the model of its content/code part alone, sharing every weight."""
    import dataclasses
    alone = {"content_plus_id": "content", "sid_plus_id": "sid_unigram"}[rep]
    fused = model("sasrec", rep, cfg=dataclasses.replace(CFG, id_dropout=p)).train()
    part = model("sasrec", alone).train()
    missing, unexpected = part.load_state_dict(fused.state_dict(), strict=False)
    assert not missing and unexpected == ["items.table.weight"]
    return fused, part


@pytest.mark.parametrize("rep", ["content_plus_id", "sid_plus_id"])
def test_id_dropout_scores_a_dropped_item_by_its_content_or_codes_alone(rep):
    """DropoutNet fusion: an item whose ID is dropped gets exactly the content-only (code-only) model's score,
    as input and as output of the same step; the others keep content + ID."""
    fused, part = _fusion_pair(rep, 0.5)
    torch.manual_seed(3)
    e = fused.items()  # one draw for the whole step
    alone = part.items()
    with torch.no_grad():
        full = fused.eval().items()
    dropped = torch.all(e == alone, dim=1)[1:].nonzero().flatten() + 1
    kept = torch.all(e == full, dim=1)[1:].nonzero().flatten() + 1
    assert len(dropped) + len(kept) == N_ITEMS and 5 < len(dropped) < 25  # every row is one or the other
    seq, lengths = pad([dropped[:4].numpy()])  # a history of dropped items only
    h = fused.hidden(seq, e)[0, lengths[0] - 1]
    h_alone = part.hidden(seq, alone)[0, lengths[0] - 1]
    torch.testing.assert_close(h, h_alone, rtol=0, atol=0)
    torch.testing.assert_close((h @ e.T)[dropped], (h_alone @ alone.T)[dropped], rtol=0, atol=0)
    assert not torch.allclose((h @ e.T)[kept], (h_alone @ alone.T)[kept])


def test_id_dropout_only_in_training_and_no_draw_when_off():
    import dataclasses
    fused, _ = _fusion_pair("content_plus_id", 0.5)
    with torch.no_grad():
        assert torch.equal(fused.eval().items(), fused.items())  # inference: both parts, always
        off = model("sasrec", "content_plus_id").train()
        state = torch.get_rng_state()
        off.items()
        assert torch.equal(torch.get_rng_state(), state)  # p = 0 leaves the RNG stream of existing runs alone
        fused.train()
        rate = np.mean([(fused.items() != off.items()).any(1)[1:].float().mean().item() for _ in range(200)])
    assert abs(rate - 0.5) < 0.05  # each item dropped with probability p (200 x 30 draws: sd 0.006)
    with pytest.raises(ValueError, match="id_dropout"):
        model("sasrec", "content", cfg=dataclasses.replace(CFG, id_dropout=0.3))
    with pytest.raises(ValueError, match="model.id_dropout"):
        dataclasses.replace(CFG, id_dropout=1.0).validate()


@pytest.mark.parametrize("loss", ["ce", "sampled", "mixed", "bce"])
def test_items_unknown_at_the_training_cut_off_are_in_no_training_objective(loss):
    """Issue 29: an item that does not exist yet is no negative: its row gets no gradient, and the full
    softmax equals a brute-force cross-entropy over the known items only."""
    known = np.ones(N_ITEMS + 1, bool)
    known[0] = False
    known[[25, 26, 27, 28, 29, 30]] = False  # arrive after the training cut-off
    torch.manual_seed(0)
    m = SeqRec("sasrec", "id", N_ITEMS, CFG, ItemFeatures(known=known)).train()
    inp = torch.tensor([[1, 2, 3, 4, 0], [5, 6, 7, 0, 0]])
    tgt = torch.tensor([[2, 3, 4, 5, 0], [6, 7, 8, 0, 0]])
    if loss == "mixed":
        with pytest.raises(ValueError, match="set_target_counts"):
            m.loss(inp, tgt, loss, negatives=64)
        with pytest.raises(ValueError, match="not among the items known"):
            m.set_target_counts(np.array([2, 3, 26]))
        m.set_target_counts(tgt[tgt > 0].numpy())
    torch.manual_seed(1)
    value = m.loss(inp, tgt, loss, ce_chunk=2, negatives=64, ce_dtype="float32")
    value.backward()
    grad = m.items.table.weight.grad
    assert grad[25:].abs().sum() == 0 and grad[9:25].abs().sum() > 0  # known non-targets are negatives
    if loss == "ce":
        with torch.no_grad():
            e = m.items()
            h = m.hidden(inp, e)[tgt > 0]
            logits = h @ e[1:25].T  # the 24 known items
            ref = torch.nn.functional.cross_entropy(logits, tgt[tgt > 0] - 1, reduction="sum")
        assert value.item() == pytest.approx(ref.item(), rel=1e-5)
    bad = torch.tensor([[1, 2, 0]]), torch.tensor([[2, 26, 0]])  # a target unknown at the cut-off
    with pytest.raises(ValueError, match="not among the items known"):
        m.loss(*bad, loss)


def test_content_init_pca_is_fit_on_known_items_only():
    emb = content(3)
    known = np.r_[False, np.arange(1, N_ITEMS + 1) <= 20]
    a = model_with(emb, known)
    emb2 = emb.copy()
    emb2[21:] = emb2[21:] * 50 + 7  # the future items' content changes wildly ...
    b = model_with(emb2, known)
    np.testing.assert_allclose(a[1:21], b[1:21], rtol=1e-5, atol=1e-6)  # ... the known items' rows do not


def model_with(emb, known):
    torch.manual_seed(0)
    m = SeqRec("sasrec", "content_init", N_ITEMS, CFG, ItemFeatures(content=emb, known=known))
    return m.items.table.weight.detach().numpy()


def test_recommend_holds_only_candidates():
    m = model("sasrec", "id")
    cand = np.r_[False, np.arange(1, N_ITEMS + 1) % 3 == 0]  # 10 candidates
    rows = pd.DataFrame({"user": [7, 8], "history": [[3, 6], [1, 2]]})
    out = recommend(m, rows, top_k=5, progress=False, candidates=cand)
    for items in out["items"]:
        assert set(items) <= set(np.flatnonzero(cand)) and len(items) == 7


def test_validation_ranks_only_the_validation_catalogue():
    """Early stopping sees the same lists as the evaluator: a non-candidate scored highest is skipped."""
    from lib.models.validation import ExactValidationModule

    class Fixed(torch.nn.Module):
        n_items = 6
        cfg = CFG

        def score_last(self, seq, lengths):  # item 6 best, then 5, 4, ...
            return torch.tensor([[-np.inf, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]).repeat(len(seq), 1)

    module = ExactValidationModule()
    module.model = Fixed()
    val = pd.DataFrame({"user": [0], "history": [[1]], "target": [5]})
    for cand, rank in ((None, 2), (np.array([False, True, True, True, True, True, False]), 1)):
        batch = next(iter(module.validation_loader(val, 8, candidates=cand)))
        module.validation_step(batch, 0)
        assert module.val_ndcg.compute().item() == pytest.approx(1 / np.log2(rank + 1))
        module.val_ndcg.reset()
