"""RPG: digit embeddings, per-digit loss and exact scoring against brute force, training, the stage."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lib.catalogue import list_mask
from lib.rpg.config import RPGConfig, RPGModelConfig, RPGTrainConfig
from lib.rpg.model import RPG, digit_tokens
from lib.rpg.training import RPGModule, fit
from lib.trainer import lr_factor
from tests.conftest import write_catalogue
from tests.models.test_training import N_ITEMS as CYCLE_ITEMS
from tests.models.test_training import tiny_split

ROOT = Path(__file__).resolve().parents[2]
N_ITEMS, M, K = CYCLE_ITEMS, 3, 4  # tiny_split's 20-item cycle; 3 digits of 4 codes


def parallel_codes(seed: int = 0) -> np.ndarray:
    """(N+1, M): distinct random digit tuples per item, row 0 = padding (-1)."""
    rng = np.random.default_rng(seed)
    tuples = rng.permutation(K ** M)[:N_ITEMS]
    digits = np.stack([(tuples // K ** j) % K for j in range(M)], axis=1)
    return np.vstack([np.full(M, -1), digits]).astype(np.int64)


def small(**kw) -> RPGModelConfig:
    return RPGModelConfig(**{"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0,
                             "max_len": 8, "temperature": 0.1, "digit_init": "random", **kw})


def model(seed: int = 0) -> RPG:
    torch.manual_seed(seed)
    m = RPG(parallel_codes(), K, small()).eval()
    with torch.no_grad():  # heads start as the identity (W = 0); random ones exercise the brute force
        m.heads.normal_(std=0.3)
        m.head_bias.normal_(std=0.1)
    return m


def test_digit_tokens_are_disjoint_per_digit_and_padding_is_zero():
    codes = parallel_codes()
    tok = digit_tokens(codes, K)
    assert (tok[0] == 0).all() and tok[1:].min() >= 1
    for j in range(M):
        assert set(tok[1:, j]) <= set(range(1 + j * K, 1 + (j + 1) * K))
    with pytest.raises(ValueError, match=r"digits must lie in \[0, 4\)"):
        digit_tokens(np.vstack([codes, [[0, 0, 4]]]), K)


def test_item_vector_is_the_mean_of_its_digit_embeddings():
    m = model()
    e = m.embed.weight.detach()
    items = torch.tensor([[3, 0], [7, 1]])
    got = m.item_vectors(items)
    codes = parallel_codes()
    for (a, b), want in zip(items.tolist(), got, strict=True):
        for it, v in ((a, want[0]), (b, want[1])):
            ref = torch.zeros(16) if it == 0 else torch.stack([e[1 + j * K + codes[it, j]] for j in range(M)]).mean(0)
            assert torch.allclose(v, ref, atol=1e-6)


def brute_force_logp(m: RPG, h: torch.Tensor) -> torch.Tensor:
    """(M, d) hidden -> (M, m, K) log-probabilities by explicit loops: residual head, cosine, temperature, softmax."""
    e = m.embed.weight.detach()
    out = torch.zeros(len(h), M, K)
    for p in range(len(h)):
        for j in range(M):
            g = h[p] + torch.nn.functional.silu(m.heads[j].T @ h[p] + m.head_bias[j])
            logits = torch.tensor([torch.nn.functional.cosine_similarity(g, e[1 + j * K + k], dim=0)
                                   for k in range(K)]) / m.cfg.temperature
            out[p, j] = torch.log_softmax(logits, dim=0)
    return out


def test_per_digit_loss_equals_brute_force():
    m = model()
    inp = torch.tensor([[1, 2, 3, 0], [5, 6, 0, 0]])
    tgt = torch.tensor([[2, 3, 4, 0], [6, 7, 0, 0]])
    with torch.no_grad():
        got = m.loss(inp, tgt)
        h = m.hidden(inp)[tgt > 0]
        lp = brute_force_logp(m, h)
    codes = parallel_codes()
    want = -sum(lp[p, j, codes[t, j]] for p, t in enumerate(tgt[tgt > 0].tolist()) for j in range(M)) / M
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_digit_loss_has_the_same_value_and_gradients(chunk):
    """train.loss_chunk: the digit loss over chunks of positions, recomputed in backward, changes nothing else."""
    m = model().double().train()
    m.gpt.eval()  # dropout off: the two passes must see the same hidden states
    inp = torch.tensor([[1, 2, 3, 0], [5, 6, 0, 0]])
    tgt = torch.tensor([[2, 3, 4, 0], [6, 7, 0, 0]])  # 5 positions: chunks of 1, 2 or 3 with a remainder
    m.heads.data.normal_(0, 0.1)  # non-zero heads, so their gradient paths are exercised
    params = [p for p in m.parameters() if p.requires_grad]
    whole = m.loss(inp, tgt)
    want = torch.autograd.grad(whole, params)
    chunked = m.loss(inp, tgt, chunk)
    got = torch.autograd.grad(chunked, params)
    torch.testing.assert_close(chunked, whole)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_exact_scores_equal_a_naive_loop_over_items():
    m = model()
    seq, lengths = torch.tensor([[1, 2, 3, 0], [9, 10, 11, 12]]), torch.tensor([3, 4])
    scores = m.score_last(seq, lengths)
    with torch.no_grad():
        h = m.hidden(seq)[torch.arange(2), lengths - 1]
        lp = brute_force_logp(m, h)
    codes = parallel_codes()
    for u in range(2):
        assert scores[u, 0] == -math.inf
        for it in range(1, N_ITEMS + 1):
            assert scores[u, it].item() == pytest.approx(sum(lp[u, j, codes[it, j]].item() for j in range(M)), abs=1e-4)
    # digits' distributions are normalised, so the scores of all K^M tuples sum to 1: the catalogue's to <= 1
    assert torch.exp(scores[:, 1:]).sum(1).max().item() <= 1.0 + 1e-5


def test_codebook_init_puts_each_digit_s_centroids_in_its_block():
    from lib.rpg.model import codebook_table
    rng = np.random.default_rng(0)
    centroids = rng.normal(size=(M, K, 2))  # 3 digits x 4 codes x 2 dims = d_model 6
    table = codebook_table(centroids, 6, row_norm=0.5).numpy().reshape(M, K, 6)
    factor = table[0, 0, 0] / centroids[0, 0, 0]
    for j in range(M):
        block = slice(2 * j, 2 * j + 2)
        np.testing.assert_allclose(table[j, :, block], factor * centroids[j], rtol=1e-5)  # one common factor
        assert np.count_nonzero(np.delete(table[j], np.r_[block], axis=1)) == 0  # zero outside block j
    assert np.linalg.norm(table.reshape(-1, 6), axis=1).mean() == pytest.approx(0.5, rel=1e-5)
    # in a model: an item's input vector is its quantised vector (centroids of its digits, concatenated) / m
    torch.manual_seed(0)
    m = RPG(parallel_codes(), K, small(d_model=6, n_heads=2, digit_init="codebook"), centroids=centroids)
    codes, rows = parallel_codes(), m.embed.weight.detach().numpy()[1:]
    factor = rows[0, 0] / centroids[0, 0, 0]  # the model's rows have the random init's mean norm
    assert np.linalg.norm(rows, axis=1).mean() == pytest.approx(0.02 * np.sqrt(6), rel=1e-5)
    for item in (1, 7, 20):
        quantised = np.concatenate([centroids[j, codes[item, j]] for j in range(M)])
        got = m.item_vectors(torch.tensor([item]))[0].detach().numpy()
        np.testing.assert_allclose(got, factor * quantised / M, rtol=1e-4, atol=1e-7)
    with pytest.raises(ValueError, match="levels x sub-vector dims = d_model"):
        RPG(parallel_codes(), K, small(digit_init="codebook"), centroids=centroids)  # 3 x 2 != 16
    with pytest.raises(ValueError, match="needs the tokenizer's centroids"):
        RPG(parallel_codes(), K, small(d_model=6, digit_init="codebook"))


def test_codebook_init_model_trains_and_its_checkpoint_restores_without_centroids(tmp_path):
    train, val = tiny_split()
    centroids = np.random.default_rng(1).normal(size=(M, K, 2))
    c = RPGConfig(small(d_model=6, digit_init="codebook"), cfg().train, top_k=5)
    module, facts = fit(c, parallel_codes(), K, train, val, str(tmp_path / "ck"), progress=False, centroids=centroids)
    assert facts["best_val_ndcg@10"] > 0.5
    re = RPGModule.load_from_checkpoint(str(tmp_path / "ck" / "best.ckpt"), map_location="cpu")
    for a, b in zip(re.state_dict().values(), module.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_lr_schedule_by_hand():
    assert lr_factor(0, 4, 20, "cosine") == pytest.approx(0.25) and lr_factor(3, 4, 20, "cosine") == 1.0
    assert lr_factor(4, 4, 20, "cosine") == pytest.approx(1.0) and lr_factor(12, 4, 20, "cosine") == pytest.approx(0.5)
    assert lr_factor(20, 4, 20, "cosine") == pytest.approx(0.0, abs=1e-12) and lr_factor(50, 4, 20, "constant") == 1.0


def cfg(**train) -> RPGConfig:
    tc = {"lr": 0.01, "warmup_steps": 5, "batch_size": 16, "max_epochs": 30, "patience": 30, "device": "cpu",
          "seed": 1, **train}
    return RPGConfig(small(), RPGTrainConfig(**tc), top_k=5)


def test_model_learns_the_successor_rule_and_checkpoint_rebuilds_it(tmp_path):
    train, val = tiny_split()
    module, facts = fit(cfg(), parallel_codes(), K, train, val, str(tmp_path / "ck"), progress=False)
    assert facts["best_val_ndcg@10"] > 0.9
    seq = torch.tensor([list(h) for h in val["history"]])
    scores = module.model.score_last(seq, torch.full((len(seq),), 5))
    scores[torch.arange(len(seq))[:, None], seq] = -math.inf  # seen items removed, as the evaluator does
    top1 = scores.argmax(1).numpy()
    assert np.mean(top1 == val["target"].to_numpy()) > 0.7  # chance: 1 in 15 unseen items
    re = RPGModule.load_from_checkpoint(str(tmp_path / "ck" / "best.ckpt"), map_location="cpu")
    for a, b in zip(re.state_dict().values(), module.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(re.model.digits, torch.from_numpy(parallel_codes()[1:]))  # the codes came back too


def test_bf16_mixed_trains_too(tmp_path):
    train, val = tiny_split()
    _, facts = fit(cfg(precision="bf16-mixed"), parallel_codes(), K, train, val, str(tmp_path / "ck"),
                   progress=False)
    assert facts["best_val_ndcg@10"] > 0.9


PARAMS = {"rpg": {"model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_len": 8,
                            "digit_init": "random"},
                  "train": {"lr": 0.01, "warmup_steps": 5, "batch_size": 16, "max_epochs": 4, "patience": 4,
                            "device": "cpu", "threads": 1},
                  "top_k": 5},
          "runs": {"parallel_generators": {"tiny": {"backbone": "gpt2", "tokenizer": "t", "protocol": "gts"}}}}


def _stage(tmp: Path, refit: bool = False, protocol: str = "gts", params: dict | None = None,
           centroids: np.ndarray | None = None, new=(), late=(), untrained=(N_ITEMS,),
           no_catalogue: bool = False) -> subprocess.CompletedProcess:
    """The stage on tiny_split without the `untrained` items in train (default: the last item, cold: scored
    through its digits only); the catalogue knows every item but `new` (first seen between T_val and
    T_test) and `late` (after T_test)."""
    train, val = tiny_split()
    train = train[~train["item"].isin(untrained)]
    split = tmp / "split"
    split.mkdir()
    if not no_catalogue:
        write_catalogue(split, N_ITEMS, late=late, new=new)
    train.to_parquet(split / "train.parquet")
    full = pd.concat([train, pd.DataFrame({"user": val["user"], "item": val["target"], "timestamp": 5})])
    full.sort_values(["user", "timestamp"]).to_parquet(split / "train_full.parquet")
    val.to_parquet(split / "val.parquet")
    val.to_parquet(split / "test.parquet")
    (split / "split.json").write_text(json.dumps({"retrain_on_validation": refit}))
    codes = np.column_stack([parallel_codes(), np.r_[-1, np.zeros(N_ITEMS, int)]])  # + a collision level
    (tmp / "codes").mkdir()
    np.save(tmp / "codes/codes.npy", codes)
    (tmp / "codes/meta.json").write_text(json.dumps({"levels": M, "codebook_sizes": [K] * M + [1],
                                                     "method": "opq", "protocol": protocol}))
    if centroids is not None:  # a pq/opq tokenizer's centroids
        np.save(tmp / "codes/centroids.npy", centroids)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params or PARAMS))
    args = [sys.executable, str(ROOT / "stages/train_rpg.py"), "--run", "tiny", "--split-dir", str(split),
            "--codes-dir", str(tmp / "codes"), "--model-dir", str(tmp / "model"), "--recs-dir", str(tmp / "recs"),
            "--metrics", str(tmp / "m.json"), "--plots-dir", str(tmp / "plots"), "--run-info", str(tmp / "run.json"),
            "--params", str(tmp / "params.yaml")]
    return subprocess.run(args, cwd=tmp, capture_output=True, text=True, timeout=300)


def test_stage_writes_exact_lists_with_cold_items_scored_natively(tmp_path):
    p = _stage(tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    val = tiny_split()[1]
    for split in ("val", "test"):
        recs = pd.read_parquet(tmp_path / f"recs/{split}.parquet")
        assert recs["user"].tolist() == val["user"].tolist()
        for items, hist in zip(recs["items"], val["history"], strict=True):
            assert len(items) == min(5 + len(set(hist)), N_ITEMS) and len(set(items)) == len(items)
    lists = pd.read_parquet(tmp_path / "recs/test.parquet")["items"]
    assert any(N_ITEMS in set(x) for x in lists)  # the cold item is ranked like any other
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["digits"] == M and m["codebook_size"] == K and m["items_sharing_all_digits"] == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert (run["family"], run["representation"], run["tokenizer"], run["n_levels"]) == \
        ("parallel_generators", "sid_parallel", "t", M)


def test_stage_codebook_init_reads_the_tokenizer_centroids(tmp_path):
    params = {**PARAMS, "rpg": {**PARAMS["rpg"], "model": {**PARAMS["rpg"]["model"], "d_model": 6,
                                                             "digit_init": "codebook"}}}
    (tmp_path / "a").mkdir()
    p = _stage(tmp_path / "a", params=params)  # no centroids.npy in the codes dir: a clear error
    assert p.returncode != 0 and "centroids.npy" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "b").mkdir()
    p = _stage(tmp_path / "b", params=params, centroids=np.random.default_rng(0).normal(size=(M, K, 2)))
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads((tmp_path / "b/m.json").read_text())["best_val_ndcg@10"] > 0


def test_stage_refit_and_protocol_check(tmp_path):
    (tmp_path / "a").mkdir()
    p = _stage(tmp_path / "a", refit=True)
    assert p.returncode == 0, p.stderr[-3000:]
    m = json.loads((tmp_path / "a/m.json").read_text())
    assert m["retrained_on_validation_epochs"] == m["best_epoch"] and m["refit_seconds"] >= 0
    (tmp_path / "b").mkdir()
    p = _stage(tmp_path / "b", protocol="loo")
    assert p.returncode != 0 and "fit under protocol 'loo'" in p.stderr and "Traceback" not in p.stderr


def test_stage_lists_hold_only_items_known_at_their_cut_off(tmp_path):
    """Item 19 first appears after T_val, item 20 after T_test; neither is trained on. With lists as long as
    the catalogue, test lists hold every item known at T_test (19 through its digits) and never 20;
    validation lists neither."""
    params = json.loads(json.dumps(PARAMS))
    params["rpg"]["top_k"] = N_ITEMS
    p = _stage(tmp_path, params=params, new=(19,), late=(20,), untrained=(19, 20))
    assert p.returncode == 0, p.stderr[-3000:]
    for split, known in (("val", set(range(1, 19))), ("test", set(range(1, 20)))):
        for items in pd.read_parquet(tmp_path / f"recs/{split}.parquet")["items"]:
            assert set(items.tolist()) == known  # every candidate, nothing else
    m = json.loads((tmp_path / "m.json").read_text())
    assert (m["val/catalogue_items"], m["test/catalogue_items"]) == (18, 19)
    assert json.loads((tmp_path / "run.json").read_text())["rules"] == []


def test_stage_names_a_missing_catalogue(tmp_path):
    p = _stage(tmp_path, no_catalogue=True)  # the split directory of an older split stage
    assert p.returncode != 0 and "catalogue.parquet" in p.stderr and "Traceback" not in p.stderr


def test_validation_ranks_only_the_validation_catalogue(tmp_path):
    train, val = tiny_split()
    cand = list_mask(pd.read_parquet(write_catalogue(tmp_path, N_ITEMS, late=(20,), new=(19,))), "val")
    module, _ = fit(cfg(max_epochs=1), parallel_codes(), K, train, val, str(tmp_path / "ck"), progress=False,
                    val_candidates=cand)
    assert module.val_candidates is cand  # lib/models/validation.py ranks only these


def test_training_loss_never_spans_an_unknown_item():
    """Per-digit cross-entropy over codes, against the targets' digits: an item that is no target (unknown at
    the training cut-off) is no negative either, so its digits do not change the loss or its gradient."""
    inp = torch.tensor([[1, 2, 3, 0], [5, 6, 7, 8]])
    tgt = torch.tensor([[2, 3, 4, 0], [6, 7, 8, 9]])
    codes = parallel_codes()
    other = codes.copy()
    other[N_ITEMS] = (codes[N_ITEMS] + 1) % K  # the unknown item's digits, changed
    grads = []
    for c in (codes, other):
        torch.manual_seed(0)
        m = RPG(c, K, small())
        loss = m.loss(inp, tgt)
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]))
    assert grads[0][0] == grads[1][0]
    assert all(torch.equal(a, b) for a, b in zip(grads[0][1], grads[1][1], strict=True))
