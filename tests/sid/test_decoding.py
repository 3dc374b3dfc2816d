"""Greedy and Hugging Face `generate` decoders against our trie beam search, and the benchmark's metrics."""
import numpy as np
import pandas as pd
import pytest
import torch

from lib.sid.config import DecodeConfig, GPT2SidConfig, SidTrainConfig
from lib.sid.decoding import NOT_A_CODE, greedy_users, hf_decode_users, prefix_constraint, token_codes
from lib.sid.decoding_bench import DecodingConfig, benchmark, invalid_id_rate, list_metrics, top_overlap
from lib.sid.recommend import decode_users
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab
from tests.sid.conftest import N_ITEMS
from tests.sid.test_generation import brute_force_logp, random_model

# 5 users, histories of 1 to 7 items; two have seen all of items 1..3 = codes (0, 0..2, 0)
HISTORIES = [[1, 2, 3, 4, 5, 6, 7], [24, 23], [9], [13, 14, 15, 16, 17, 18], [3, 1, 2]]


def world(seed=3, trie_softmax=True, exclude_seen=True, precision="32-true"):
    from tests.sid.conftest import sid_codes
    codes, meta = sid_codes()
    v = SidVocab.from_meta(codes, meta)
    cfg = GPT2SidConfig(train=SidTrainConfig(precision=precision),
                        decode=DecodeConfig(beam_width=10, batch_size=2, exclude_seen=exclude_seen), top_k=10)
    return v, random_model(v, seed=seed, trie_softmax=trie_softmax), SidTrie(codes, v.sizes), cfg


def users_of(histories):
    return np.arange(len(histories)), [list(h) for h in histories]


@pytest.mark.parametrize("width", [1, 5, N_ITEMS + 6])
def test_hf_constrained_never_generates_an_invalid_or_a_seen_item(width):
    v, model, trie, cfg = world()
    users, hist = users_of(HISTORIES)
    items, codes = hf_decode_users(model, v, trie, users, hist, cfg, width)
    generated, invalid = invalid_id_rate(codes, trie)
    assert invalid == 0.0 and generated > 0
    for it, h in zip(items, hist, strict=True):
        assert len(it) == min(width, N_ITEMS - len(set(h))) and len(set(it.tolist())) == len(it)
        assert it.min() >= 1 and it.max() <= N_ITEMS and not set(it.tolist()) & set(h)


def test_greedy_never_generates_an_invalid_or_a_seen_item():
    v, model, trie, cfg = world()
    users, hist = users_of(HISTORIES)
    items, codes = greedy_users(model, v, trie, users, hist, cfg)
    assert invalid_id_rate(codes, trie) == (len(hist), 0.0)
    for it, h in zip(items, hist, strict=True):
        assert len(it) == 1 and 1 <= it[0] <= N_ITEMS and it[0] not in h


def test_hf_constrained_without_exclusion_may_return_seen_items():
    """The exclusion is the callback's doing: without it, the seen items come back (the filter is live)."""
    v, model, trie, cfg = world(exclude_seen=False)
    users, hist = users_of(HISTORIES)
    items, _ = hf_decode_users(model, v, trie, users, hist, cfg, N_ITEMS)
    assert all(sorted(it.tolist()) == list(range(1, N_ITEMS + 1)) for it in items)


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_full_width_hf_beam_search_returns_our_beam_search_items(exclude_seen):
    """W >= the number of valid items: HF's constrained beam search and ours find the same set, the
    brute-force answer (every unseen item); without exclusion both rank by the model's own distribution,
    so the lists are equal item for item and agree with the brute-force scores."""
    v, model, trie, cfg = world(exclude_seen=exclude_seen)
    users, hist = users_of(HISTORIES)
    wide = GPT2SidConfig(train=cfg.train, decode=DecodeConfig(beam_width=N_ITEMS, batch_size=2,
                                                              exclude_seen=exclude_seen), top_k=N_ITEMS)
    ours, _ = decode_users(model, v, trie, users, hist, wide)
    hf, _ = hf_decode_users(model, v, trie, users, hist, cfg, N_ITEMS)
    for o, h, seen in zip(ours, hf, hist, strict=True):
        unseen = set(range(1, N_ITEMS + 1)) - (set(seen) if exclude_seen else set())
        assert set(o.tolist()) == set(h.tolist()) == unseen
        if not exclude_seen:
            assert o.tolist() == h.tolist()
    prompt = v.sequence(np.array(hist[0]), users[0])
    lp = brute_force_logp(model, v, prompt, trie)
    if not exclude_seen:
        assert hf[0].tolist() == (torch.argsort(lp, descending=True) + 1).tolist()


def brute_force_greedy(model, vocab, prompt, seen) -> int:
    """Per level one full forward pass (no cache), the argmax over the codes that lead to an unseen item."""
    unseen = np.setdiff1d(np.arange(1, vocab.n_items + 1), seen)
    tokens, prefix = list(prompt), []
    for d in range(vocab.n_levels):
        with torch.no_grad():
            logits = model.lm(input_ids=torch.tensor([tokens])).logits[0, -1]
        unseen = unseen[(vocab.codes[unseen, :d] == prefix).all(axis=1)]  # unseen items under the prefix
        c = max(set(vocab.codes[unseen, d].tolist()), key=lambda c: logits[vocab.offsets[d] + c].item())
        prefix.append(c)
        tokens.append(int(vocab.offsets[d]) + c)
    return int(unseen[vocab.codes[unseen, -1] == prefix[-1]][0])


@pytest.mark.parametrize("seed", [0, 3, 7])
def test_greedy_is_the_per_step_argmax_in_both_implementations(seed):
    """greedy_users is our beam search at width 1; HF's greedy search runs the callback instead."""
    v, model, trie, cfg = world(seed=seed)
    users, hist = users_of(HISTORIES)
    greedy, _ = greedy_users(model, v, trie, users, hist, cfg)
    hf, _ = hf_decode_users(model, v, trie, users, hist, cfg, 1)
    for b, (u, h) in enumerate(zip(users, hist, strict=True)):
        want = brute_force_greedy(model, v, v.sequence(np.array(h), u), h)
        assert greedy[b].tolist() == hf[b].tolist() == [want]


def test_prefix_constraint_allows_the_trie_children_less_exhausted_prefixes():
    v, model, trie, cfg = world()
    hist = [[1, 2, 3], []]  # user 0 has seen every item under codes (0, 0..2, 0): items 1, 2, 3
    ex = [trie.exhausted(hist, d) for d in range(1, v.n_levels + 1)]
    off = v.offsets.tolist()
    fn = prefix_constraint(trie, off, prompt_len=1, exhausted=ex)
    root = torch.tensor([v.bos])
    assert fn(0, root) == fn(1, root) == [off[0] + c for c in range(4)]
    after0 = torch.tensor([v.bos, off[0] + 0])
    assert fn(1, after0) == [off[1] + c for c in range(3)]
    # under (0, c1) the collision code 0 is item 1 + c1 (seen by user 0), code 1 is item 4 + c1
    assert fn(0, torch.tensor([v.bos, off[0], off[1] + 2])) == [off[2] + 1]
    assert fn(1, torch.tensor([v.bos, off[0], off[1] + 2])) == [off[2] + 0, off[2] + 1]


def test_unconstrained_generate_counts_invalid_ids_and_lists_only_real_items():
    v, model, trie, cfg = world(seed=1)
    users, hist = users_of(HISTORIES)
    items, codes = hf_decode_users(model, v, trie, users, hist, cfg, 10, constrained=False)
    generated, invalid = invalid_id_rate(codes, trie)
    assert generated == 10 * len(hist) and invalid > 0.5  # an untrained LM rarely hits a code of each column
    assert (codes == NOT_A_CODE).any()
    assert all(((it >= 1) & (it <= N_ITEMS)).all() for it in items)


def test_token_codes_mark_tokens_outside_their_column():
    v, _, trie, _ = world()  # offsets 3, 7, 10; sizes 4, 3, 2
    tokens = np.array([[3, 7, 10], [6, 9, 11], [7, 6, 12], [2, 6, 9]])
    codes = token_codes(tokens, v)
    assert codes[:2].tolist() == [[0, 0, 0], [3, 2, 1]] and (codes[2:] == NOT_A_CODE).all()
    # a sequence of tokens just below each column (codes -1 before mapping) is generated and invalid
    assert invalid_id_rate(codes[None], trie) == (4, 0.5)


def test_invalid_id_rate_by_hand():
    v, _, trie, _ = world()
    codes = np.array([[[0, 0, 0], [3, 2, 1], [0, 0, 5]],  # items 1, 24, collision code out of range
                      [[-1, -1, -1], [NOT_A_CODE, 0, 0], [1, 2, 0]]])  # no sequence, a non-code token, item 9
    assert invalid_id_rate(codes, trie) == (5, pytest.approx(2 / 5))


def test_list_metrics_and_overlap_by_hand():
    items = [np.array([7, 3, 5]), np.array([2]), np.array([], dtype=np.int64), np.array([4, 8, 9])]
    hist = [[7], [], [1], [4, 8]]
    targets = np.array([5, 9, 1, 9])  # ranks after the seen filter: 2, miss, miss, 1
    m = list_metrics(items, hist, targets)
    assert m["ndcg@10"] == pytest.approx((1 / np.log2(3) + 1) / 4)
    assert m["hr@10"] == m["hr@100"] == 0.5
    assert m["distinct_items@10"] == 4  # 3, 5, 2, 9: seen 7, 4, 8 are filtered before counting
    other = [np.array([5, 3]), np.array([6]), np.array([], dtype=np.int64), np.array([1, 9])]
    # top 2 after filtering: {3,5} vs {5,3}: 1; {2} vs {6}: 0; {} vs {}: 0; {9} vs {1,9}: 1/2
    # (unfiltered it would be {7,3} vs {5,3}: 1/2 and {4,8} vs {1,9}: 0)
    assert top_overlap(items, other, hist, 2) == pytest.approx(1.5 / 4)


def test_hr100_needs_the_target_in_the_first_100():
    long = np.arange(2, 202)  # 200 items; the target 150 is at rank 149
    m = list_metrics([long, long], [[], list(range(2, 60))], np.array([150, 150]))
    assert m["hr@100"] == 0.5 and m["hr@10"] == 0.0  # 58 seen items removed: rank 91 for the second user


def test_benchmark_reports_every_method():
    v, model, trie, cfg = world(precision="bf16-mixed")
    users, hist = users_of(HISTORIES)
    rows = pd.DataFrame({"user": users, "history": hist, "target": [8, 1, 10, 19, 4]})
    bench = DecodingConfig(widths=(3, N_ITEMS), hf_widths=(3,), unconstrained_widths=(3,))
    out = benchmark(model, v, trie, rows, cfg, bench)
    assert list(out["methods"]) == ["greedy", "beam@3", f"beam@{N_ITEMS}", "hf_greedy", "hf_beam@3",
                                    "hf_unconstrained@3"]
    assert out["precision"] == "bf16-mixed" and out["users"] == 5 and out["cold_rule"] == "off"
    m = out["methods"]
    for name in ("greedy", "beam@3", f"beam@{N_ITEMS}", "hf_greedy", "hf_beam@3"):
        assert m[name]["invalid_id_rate"] == 0.0 and m[name]["users_per_second"] > 0
    assert m[f"beam@{N_ITEMS}"]["hr@100"] == 1.0  # every unseen item is listed: every unseen target is found
    assert m["greedy"]["generated"] == 5 and m["beam@3"]["generated"] == 15
    assert "top10_overlap_with_ours" in m["hf_beam@3"] and "top10_overlap_with_ours" not in m["beam@3"]
    assert m["hf_greedy"]["top10_overlap_with_ours"] == 1.0  # the same argmax, in bfloat16 too


def test_decoding_config_checks_widths():
    from lib.config import ConfigError, from_dict
    with pytest.raises(ConfigError, match="width"):
        from_dict(DecodingConfig, {"hf_widths": [0]}, "decoding")
    with pytest.raises(ConfigError, match="widht"):
        from_dict(DecodingConfig, {"widht": [1]}, "decoding")
