"""GPT-2 Semantic-ID model: token batches, exact constrained beam search, overfitting, checkpoints."""
import numpy as np
import pytest
import torch

from lib import metrics
from lib.sid.beam import beam_search, length_batches
from lib.sid.config import DecodeConfig, GPT2SidConfig, SidModelConfig, SidTrainConfig
from lib.sid.data import SidSequenceDataset, user_sequences
from lib.sid.model import SidGPT2
from lib.sid.recommend import invalid_rate, prefix_hit_rates, recommend
from lib.sid.training import SidModule, fit
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab
from lib.trainer import seed_and_pin
from tests.sid.conftest import N_ITEMS, cycle_split


def config(**train):
    tc = dict(lr=3e-3, batch_size=16, max_epochs=40, patience=40, val_every=5, device="cpu", seed=1)
    tc.update(train)
    return GPT2SidConfig(SidModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, max_len=8),
                         SidTrainConfig(**tc), DecodeConfig(beam_width=10, batch_size=8), top_k=10)


def random_model(vocab, seed=0, trie_softmax=True):
    torch.manual_seed(seed)
    cfg = SidModelConfig(d_model=32, n_layers=1, n_heads=2, d_ff=64, dropout=0.0, max_len=8, trie_softmax=trie_softmax)
    return SidGPT2(vocab.vocab_size, vocab.prefix_len, vocab.column_masks(), cfg).eval()


def brute_force_logp(model, vocab, prompt, trie=None):
    """log p(item | prompt) of every item by scoring its C tokens in one full forward pass each.

    With a trie, each code's softmax is over the children of its prefix (trie_softmax).
    """
    tok = vocab.item_tokens()
    full = torch.tensor(np.stack([np.r_[prompt, tok[i]] for i in range(1, vocab.n_items + 1)]))
    with torch.no_grad():
        logits = model.lm(input_ids=full).logits
    lp = torch.zeros(vocab.n_items)
    for j in range(vocab.n_levels):
        o, s = vocab.offsets[j], vocab.sizes[j]
        lg = logits[:, len(prompt) - 1 + j, o:o + s]
        if trie is not None:
            lg = lg.masked_fill(trie.children[j][torch.from_numpy(trie.node_of[j][1:])] < 0, float("-inf"))
        col = torch.log_softmax(lg, dim=-1)
        lp += col[torch.arange(vocab.n_items), torch.from_numpy(vocab.codes[1:, j])]
    return lp


def test_collate_marks_each_target_with_its_code_column_and_prefix_node(sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    trie = SidTrie(codes, v.sizes)
    ds = SidSequenceDataset(np.array([0, 1]), [np.array([1, 2]), np.array([5, 6, 7])], v, trie.node_of)
    inp, tgt, col, node = ds.collate([ds[0], ds[1]])
    # target item 2's codes: root, then the nodes of its 1- and 2-code prefixes
    assert node[0, 3:6].tolist() == [0, trie.node_of[1][2], trie.node_of[2][2]]
    assert node[0, 6:].tolist() == [-1] * 3
    assert inp.shape == (2, 9)  # bos + 3 items x 3 codes, minus the last token
    assert col[0].tolist() == [0, 1, 2, 0, 1, 2, -1, -1, -1]  # bos predicts column 0; padding is -1
    assert col[1].tolist() == [0, 1, 2] * 3
    assert torch.equal(tgt[1, :8], inp[1, 1:])  # the target is the next input token
    assert tgt[0, 6:].tolist() == [0, 0, 0] and inp[0, 0] == v.bos


def test_trie_softmax_loss_is_item_nll(sid_world):
    """With trie_softmax the summed loss of one item equals -log p(item) of the brute-force scorer."""
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    trie = SidTrie(codes, v.sizes)
    model = random_model(v, seed=5)
    ds = SidSequenceDataset(np.array([0]), [np.array([3, 9])], v, trie.node_of)
    inp, tgt, col, node = ds.collate([ds[0]])
    col[0, :3] = -1  # score only item 9, given bos + item 3
    with torch.no_grad():
        loss = model.loss(inp, tgt, col, node, trie.children)
    lp = brute_force_logp(model, v, v.sequence(np.array([3]), 0), trie)
    torch.testing.assert_close(loss, -lp[9 - 1], atol=1e-4, rtol=1e-4)
    assert torch.exp(lp).sum().item() == pytest.approx(1.0, abs=1e-4)  # a distribution over real items


def test_user_sequences_keep_last_items_of_users_with_two():
    import pandas as pd
    train = pd.DataFrame({"user": [0, 0, 0, 1, 2, 2], "item": [1, 2, 3, 4, 5, 6]})
    users, seqs = user_sequences(train, max_len=1)
    assert users.tolist() == [0, 2] and [s.tolist() for s in seqs] == [[2, 3], [5, 6]]


@pytest.mark.parametrize("user_buckets,trie_softmax", [(0, True), (7, True), (0, False)])
def test_full_width_beam_search_equals_brute_force_ranking(sid_world, user_buckets, trie_softmax):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta, user_buckets)
    model = random_model(v, trie_softmax=trie_softmax)
    trie = SidTrie(codes, v.sizes)
    prompts = np.stack([v.sequence(np.array(h), u) for u, h in [(3, [1, 2]), (4, [9, 20])]])
    items, scores, got_codes = beam_search(model, torch.tensor(prompts), trie, v.offsets.tolist(), N_ITEMS)
    for b in range(2):
        lp = brute_force_logp(model, v, prompts[b], trie if trie_softmax else None)
        assert items[b].tolist() == (torch.argsort(lp, descending=True) + 1).tolist()
        torch.testing.assert_close(scores[b], lp.sort(descending=True).values, atol=1e-4, rtol=1e-4)
        assert (codes[items[b].numpy()] == got_codes[b].numpy()).all()


def test_narrow_beam_returns_distinct_real_unseen_items(sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    model, trie = random_model(v, seed=3), SidTrie(codes, v.sizes)
    hist = [[1, 2, 3, 4, 5, 6, 7], [24, 23]]
    prompts = torch.tensor(np.stack([v.sequence(np.array(h[-2:]), 0) for h in hist]))
    ex = [trie.exhausted(hist, d) for d in range(1, v.n_levels + 1)]
    items, scores, _ = beam_search(model, prompts, trie, v.offsets.tolist(), 5, ex)
    for b, h in enumerate(hist):
        got = items[b].tolist()
        assert len(set(got)) == 5 and 0 not in got and not set(got) & set(h)
        assert (scores[b][:-1] >= scores[b][1:]).all()
    # asking for every item: exactly the unseen ones come back, then empty beams
    items, scores, _ = beam_search(model, prompts, trie, v.offsets.tolist(), N_ITEMS, ex)
    for b, h in enumerate(hist):
        got = [i for i in items[b].tolist() if i]
        assert sorted(got) == sorted(set(range(1, N_ITEMS + 1)) - set(h))
        assert torch.isinf(scores[b][len(got):]).all()


def test_length_batches_group_equal_lengths():
    lengths = np.array([3, 1, 3, 3, 1, 2])
    batches = length_batches(lengths, 2)
    assert sorted(np.concatenate(batches).tolist()) == list(range(6))
    assert all(len(set(lengths[b])) == 1 and len(b) <= 2 for b in batches)


def test_model_overfits_successor_rule_and_checkpoint_rebuilds_it(tmp_path, sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    train, val = cycle_split()
    module, facts = fit(config(), v, meta, train, val, str(tmp_path / "ck"), progress=False)
    assert facts["best_val_ndcg@10"] > 0.9
    recs, gen = recommend(module.model, v, module.trie, val, config(), progress=False)
    hist = list(val["history"])
    for items, h in zip(recs["items"], hist, strict=True):
        assert len(items) == 10 and len(set(items)) == 10 and not set(items) & set(h)
        assert items.min() >= 1 and items.max() <= N_ITEMS
    top1 = metrics.top_k(list(recs["items"]), 1)[:, 0]
    assert np.mean(top1 == val["target"].to_numpy()) > 0.9
    assert invalid_rate(gen, v) == 0.0
    hits = prefix_hit_rates(list(recs["items"]), val["target"].to_numpy(), v, k=1)
    assert hits["prefix_hr@1/codes1"] >= hits["prefix_hr@1/codes2"] >= hits["prefix_hr@1/codes3"] > 0.9
    re = SidModule.load_from_checkpoint(str(tmp_path / "ck" / "best.ckpt"), map_location="cpu")
    assert re.hparams.model_cfg["d_model"] == 32 and re.hparams.vocab_meta["vocab_size"] == meta["vocab_size"]
    for a, b in zip(re.state_dict().values(), module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_same_seed_same_validation(tmp_path, sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    train, val = cycle_split()
    c = config(max_epochs=4, val_every=2)
    seed_and_pin(c.train.seed, c.train.threads)  # what the training road does before each fit (lib/road.py)
    _, a = fit(c, v, meta, train, val, str(tmp_path / "a"), progress=False)
    seed_and_pin(c.train.seed, c.train.threads)
    _, b = fit(c, v, meta, train, val, str(tmp_path / "b"), progress=False)
    assert a["best_val_ndcg@10"] == b["best_val_ndcg@10"]


def test_invalid_rate_and_prefix_hits_by_hand(sid_world):
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    gen = np.array([[[0, 0, 0], [3, 2, 1], [0, 0, 5], [-1, -1, -1]]])  # two items, one unknown, one empty
    assert invalid_rate(gen, v) == pytest.approx(1 / 3)
    # target 5 = (0, 1, 1); list [2 = (0, 1, 0), 7 = (1, 0, 0)]: agrees on 2 codes, not 3
    hits = prefix_hit_rates([np.array([2, 7]), np.array([5])], np.array([5, 5]), v, k=2)
    assert hits == {"prefix_hr@2/codes1": 1.0, "prefix_hr@2/codes2": 1.0, "prefix_hr@2/codes3": 0.5}


def test_config_checks_beam_width():
    from lib.config import ConfigError, from_dict
    with pytest.raises(ConfigError, match="beam_width"):
        from_dict(GPT2SidConfig, {"top_k": 50, "decode": {"beam_width": 20}}, "gpt2_sid")


def test_mix_cold_puts_prefix_matched_cold_items_at_every_nth_rank(sid_world):
    from lib.cold import untrained
    from lib.sid.recommend import cold_index, mix_cold
    codes, _ = sid_world
    cold = np.flatnonzero(untrained(N_ITEMS, np.array([1, 2, 3, 7, 8, 9, 13])))
    assert 4 in cold and 1 not in cold and len(cold) == N_ITEMS - 7
    index = cold_index(codes, cold, prefix=2)
    # item 1 = (0, 0, .): cold item 4 shares (0, 0); item 7 = (1, 0, .): cold 10 shares (1, 0)
    assert index[(0, 0)] == [4] and index[(1, 0)] == [10]
    beams = np.array([1, 7, 2, 3, 8])
    out = mix_cold(beams, history=[], index=index, codes=codes, prefix=2, every=2, length=6)
    assert out.tolist() == [1, 4, 7, 10, 2, 5]  # rank 6: cold 5 = (0, 1) matches beam item 2
    # seen cold items are skipped; when candidates run out the beams fill in
    out = mix_cold(beams, history=[4, 5, 6, 10, 11, 12], index=index, codes=codes, prefix=2, every=2, length=5)
    assert out.tolist() == [1, 7, 2, 3, 8]


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_precision_applies_to_training_and_every_decoding(tmp_path, sid_world, monkeypatch, precision):
    """train.precision: bfloat16 autocast in the loss and in validation/test beam search alike, or nowhere."""
    import lib.sid.recommend as rec
    seen = {"train": set(), "decode": set()}
    loss, search = SidGPT2.loss, rec.beam_search

    def spy_loss(self, *a, **k):
        seen["train"].add(torch.is_autocast_enabled("cpu"))
        return loss(self, *a, **k)

    def spy_search(*a, **k):
        seen["decode"].add(torch.is_autocast_enabled("cpu"))
        return search(*a, **k)

    monkeypatch.setattr(SidGPT2, "loss", spy_loss)
    monkeypatch.setattr(rec, "beam_search", spy_search)
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    train, val = cycle_split()
    cfg = config(precision=precision)
    module, facts = fit(cfg, v, meta, train, val, str(tmp_path / "ck"), progress=False)
    recs, _ = recommend(module.model, v, module.trie, val, cfg, progress=False)
    on = precision == "bf16-mixed"
    assert seen == {"train": {on}, "decode": {on}}
    assert facts["best_val_ndcg@10"] > 0.9  # the successor rule is learnt in either mode
    for items, h in zip(recs["items"], val["history"], strict=True):
        assert len(set(items)) == 10 and not set(items) & set(h)


def test_validation_target_nll_is_the_mean_brute_force_nll_of_reachable_targets(sid_world):
    """The generator's cheap validation proxy: mean over users of -log p(target | history), each code's softmax
    over the validation trie; a target outside that trie (unreachable) is left out, not scored as -inf, and a
    history item outside it (newer than the trie's cut-off) is read as input."""
    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    cfg = config()
    module = SidModule({k: meta[k] for k in ("codebook_sizes", "token_offsets", "special_tokens", "vocab_size")},
                       cfg.model.__dict__, cfg.train.__dict__, cfg.decode.__dict__, cfg.top_k)
    module.model = random_model(v, seed=3)
    items = np.ones(N_ITEMS + 1, dtype=bool)
    items[20] = False  # item 20 is not in the validation lists' catalogue
    module.vocab, module.val_trie = v, SidTrie(codes, v.sizes, items)
    users, hists, targets = np.array([0, 1, 2]), [[3, 4], [20, 7], [18, 19]], np.array([5, 8, 20])
    got, n = module.target_nll(users, hists, targets)
    assert n == 2
    want = [-brute_force_logp(module.model, v, v.sequence(np.array(h), u), module.val_trie)[t - 1]
            for u, h, t in zip(users[:2], hists[:2], targets[:2], strict=True)]
    torch.testing.assert_close(got, torch.stack(want).mean(), atol=1e-4, rtol=1e-4)


def test_early_stopping_on_the_target_nll_proxy_never_searches_and_keeps_its_lowest_checkpoint(
        tmp_path, sid_world, monkeypatch):
    """train.monitor target_nll: validation is the teacher-forced proxy alone (no beam search), the run stops on
    it and keeps the checkpoint of its lowest value; the model still learns the successor rule."""
    import pandas as pd
    from lightning.pytorch.loggers import CSVLogger

    from lib.sid import training

    codes, meta = sid_world
    v = SidVocab.from_meta(codes, meta)
    train, val = cycle_split()

    def no_search(*a, **k):
        raise AssertionError("beam search during validation")

    monkeypatch.setattr(training, "decode_users", no_search)
    c = config(monitor="target_nll", max_epochs=30, patience=2, val_every=2, val_users=0)
    logger = CSVLogger(str(tmp_path), name="log", version=0)
    module, facts = fit(c, v, meta, train, val, str(tmp_path / "ck"), logger=logger, progress=False)
    monkeypatch.undo()
    log = pd.read_csv(tmp_path / "log" / "version_0" / "metrics.csv").dropna(subset=["val/target_nll"])
    assert "val/ndcg@10" not in log.columns
    assert facts["monitor"] == "val/target_nll" and "best_val_ndcg@10" not in facts
    best = log["val/target_nll"].idxmin()
    assert facts["best_val_target_nll"] == pytest.approx(log.loc[best, "val/target_nll"], abs=1e-5)
    assert facts["best_epoch"] == int(log.loc[best, "epoch"]) + 1
    assert facts["val_users"] == len(val) and facts["val_users_decoded"] == 0
    recs, _ = recommend(module.model, v, module.trie, val, c, progress=False)
    top1 = metrics.top_k(list(recs["items"]), 1, seen=list(val["history"]))[:, 0]
    assert np.mean(top1 == val["target"].to_numpy()) > 0.9
