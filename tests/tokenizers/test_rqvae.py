"""RQ-VAE tokenizer: quantiser invariants, anti-collapse machinery, the diversity term, training, config."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.config import ConfigError, from_dict
from lib.tokenizers.codes import level_stats
from lib.tokenizers.rqvae import (
    RQVAE,
    ResidualQuantizer,
    RQVAEConfig,
    checkpoint,
    fit_and_encode,
    from_checkpoint,
    init_codebooks,
    quantize_all,
    reset_dead_codes,
    rotate_onto,
    train,
    usage_deficit,
)
from tests.tokenizers.conftest import TINY, clusters


@pytest.mark.parametrize("estimator", ["ste", "rotation"])
def test_decoding_the_codes_gives_the_quantised_vector(estimator):
    torch.manual_seed(0)
    rq = ResidualQuantizer(levels=3, size=16, dim=8, estimator=estimator)
    rq.codebooks.data.normal_()
    z = torch.randn(50, 8)
    out = rq(z)
    torch.testing.assert_close(out.z_q, rq.decode(out.codes))
    manual = sum(rq.codebooks[level][out.codes[:, level]] for level in range(3))
    torch.testing.assert_close(out.z_q, manual)
    torch.testing.assert_close(out.residuals[:, 1], z - rq.codebooks[0][out.codes[:, 0]])
    # each level picks the code nearest to its residual
    for level in range(3):
        brute = torch.cdist(out.residuals[:, level], rq.codebooks[level].detach()).argmin(-1)
        assert torch.equal(brute, out.codes[:, level])


def test_rotation_trick_value_and_gradient():
    torch.manual_seed(0)
    e = torch.randn(6, 5, requires_grad=True)
    q = torch.randn(6, 5)
    g = torch.randn(6, 5)
    out = rotate_onto(e, q)
    torch.testing.assert_close(out, q)
    (out * g).sum().backward()
    # the gradient is g through a rotation (norm kept) times |q| / |e|, and it differs from STE's g
    scale = q.norm(dim=-1) / e.detach().norm(dim=-1)
    torch.testing.assert_close(e.grad.norm(dim=-1), scale * g.norm(dim=-1))
    assert not torch.allclose(e.grad, g)
    # and the rotation maps e's direction onto q's: the gradient of <q^, out> w.r.t. e is |q|/|e| * e^
    e2 = e.detach().clone().requires_grad_(True)
    q_hat = q / q.norm(dim=-1, keepdim=True)
    (rotate_onto(e2, q) * q_hat).sum().backward()
    torch.testing.assert_close(e2.grad, scale[:, None] * e.detach() / e.detach().norm(dim=-1, keepdim=True))


@pytest.mark.parametrize("estimator", ["ste", "rotation"])
def test_gradient_reaches_the_encoder(estimator):
    torch.manual_seed(0)
    model = RQVAE(16, RQVAEConfig(**TINY, estimator=estimator))
    x = torch.as_tensor(clusters()[1:])
    x_hat, q = model(x)
    torch.testing.assert_close(q.z_q, model.quantizer.decode(q.codes))  # forward value = the codes
    (x_hat - x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_kmeans_init_uses_every_level0_code_on_separated_clusters():
    torch.manual_seed(0)
    model = RQVAE(16, RQVAEConfig(**{**TINY, "hidden": (), "latent_dim": 16}))  # linear 16 -> 16: clusters stay apart
    x = torch.as_tensor(clusters(n_clusters=8)[1:])
    codes, _, _ = quantize_all(model, x)
    assert len(codes[:, 0].unique()) < 8  # uniform random codebooks: collapsed
    init_codebooks(model, x, torch.Generator().manual_seed(0))
    codes, _, _ = quantize_all(model, x)
    assert len(codes[:, 0].unique()) == 8
    labels = np.repeat(np.arange(8), 25)  # one code per cluster
    assert all(len(set(codes[labels == c, 0].tolist())) == 1 for c in range(8))


def test_dead_code_reset_replaces_an_unused_code():
    torch.manual_seed(0)
    model = RQVAE(16, RQVAEConfig(**TINY))
    books = model.quantizer.codebooks
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.as_tensor(clusters()[1:])
    x_hat, q = model(x)
    (x_hat.sum() + q.codebook_loss).backward()
    optimizer.step()
    codes, residuals, _ = quantize_all(model, x)
    unused = sorted(set(range(8)) - set(codes[:, 0].tolist()))
    assert unused
    before = books.detach().clone()
    idle = torch.zeros(2, 8, dtype=torch.long)
    n = reset_dead_codes(model, idle, codes, residuals, 1, torch.Generator().manual_seed(0), optimizer)
    assert n >= len(unused)
    for k in unused:  # moved onto one of the level-0 residuals (the encoder outputs), Adam state cleared
        assert not torch.equal(books[0, k], before[0, k])
        assert (residuals[:, 0] == books[0, k]).all(-1).any()
        assert not optimizer.state[books]["exp_avg"][0, k].any()
    used = codes[:, 0].unique()
    torch.testing.assert_close(books[0, used], before[0, used])
    assert not idle.any()
    # with patience 2 a first unused epoch only counts
    idle2 = torch.zeros(2, 8, dtype=torch.long)
    assert reset_dead_codes(model, idle2, codes, residuals, 2, torch.Generator()) == 0 and idle2.sum() > 0


def test_training_reduces_reconstruction_error():
    logs = []
    train(clusters()[1:], RQVAEConfig(**{**TINY, "epochs": 40}), lambda e, d: logs.append(d), progress=False)
    assert len(logs) == 40
    assert logs[-1]["recon_mse"] < 0.5 * logs[0]["recon_mse"]
    assert "usage_level_0" not in logs[0]  # warm-up epoch: no quantiser yet
    assert {"loss", "usage_level_0", "usage_level_1", "fit_collision_rate", "dead_codes_reset"} <= set(logs[-1])


def test_same_seed_same_codes_and_checkpoint_round_trip():
    emb = clusters()
    ids = np.arange(1, len(emb))
    model, a, facts = fit_and_encode(emb, ids, RQVAEConfig(**TINY), progress=False)
    _, b, _ = fit_and_encode(emb, ids, RQVAEConfig(**TINY), progress=False)
    assert np.array_equal(a, b) and a.dtype == np.int64 and a.shape == (len(emb) - 1, 2)
    _, c, _ = fit_and_encode(emb, ids, RQVAEConfig(**{**TINY, "seed": 7}), progress=False)
    assert not np.array_equal(a, c)
    reloaded = from_checkpoint(checkpoint(model, RQVAEConfig(**TINY), 16))
    codes, _, _ = quantize_all(reloaded, torch.as_tensor(emb[1:]))
    assert np.array_equal(codes.numpy(), a)
    assert facts["fit_item_count"] == len(ids) and 0 <= facts["recon_rel"] < 1


def test_cold_items_are_encoded_too():
    emb = clusters()
    fit = np.arange(1, len(emb), 2)  # odd items only; each even item has a fitted near-twin in its cluster
    _, codes, facts = fit_and_encode(emb, fit, RQVAEConfig(**TINY), progress=False)
    assert codes.shape == (len(emb) - 1, 2) and facts["fit_item_count"] == len(fit)
    assert (codes >= 0).all() and (codes < 8).all()


def test_usage_deficit_is_zero_for_even_use_one_for_collapse_and_has_finite_gradients():
    book = torch.eye(8, requires_grad=True)  # 8 codes, all pairwise distances equal
    even = usage_deficit(book.detach().clone(), book)  # one item on each code
    assert abs(even.item()) < 1e-6
    collapsed = usage_deficit(book.detach()[:1].repeat(5, 1), book)  # every item on code 0
    assert abs(collapsed.item() - 1) < 1e-6
    collapsed.backward()
    assert torch.isfinite(book.grad).all()
    g = torch.Generator().manual_seed(0)
    residual = torch.randn(64, 4, generator=g).requires_grad_(True)
    codes = torch.randn(16, 4, generator=g).requires_grad_(True)
    deficit = usage_deficit(residual, codes)
    assert 0 < deficit.item() < 1
    deficit.backward()
    for t in (residual, codes):  # the term moves both the encoder's residuals and the codebook
        assert torch.isfinite(t.grad).all() and t.grad.abs().sum() > 0


def test_diversity_term_is_off_by_default_and_logged_when_on():
    torch.manual_seed(0)
    model = RQVAE(16, RQVAEConfig(**TINY))
    x = torch.as_tensor(clusters()[1:])
    _, plain = model(x)
    _, with_term = model(x, diversity=True)
    assert plain.diversity_loss.item() == 0 and 0 < with_term.diversity_loss.item() <= 2  # 2 levels, each <= 1
    assert torch.equal(plain.codes, with_term.codes)
    logs = []
    train(clusters()[1:], RQVAEConfig(**{**TINY, "diversity_weight": 0.1}), lambda e, d: logs.append(d),
          progress=False)
    assert "usage_deficit" in logs[-1] and "usage_deficit" not in logs[0]  # warm-up has no codes


@pytest.mark.parametrize("seed", [0, 1])
def test_diversity_term_spreads_code_use_where_plain_training_under_uses_codes(seed):
    # 16 loose clusters, 16 codes, no k-means init and no dead-code reset: plain training leaves level 0 at a
    # perplexity of ~7-10 of 16 (seeds 0-7); with the term at 0.3 it reaches ~12-16 (measured)
    emb = clusters(n_clusters=16, per=25, noise=0.2)
    base = {**TINY, "codebook_size": 16, "epochs": 40, "kmeans_init": False, "dead_code_patience": 0, "seed": seed}
    perplexity = []
    for weight in (0.0, 0.3):
        _, raw, _ = fit_and_encode(emb, np.arange(1, len(emb)), RQVAEConfig(**base, diversity_weight=weight),
                                   progress=False)
        perplexity.append(level_stats(raw, [16, 16])["level_0"]["perplexity"])
    assert perplexity[1] > perplexity[0] + 2


@pytest.mark.parametrize("bad, field", [
    ({"levels": 0}, "rqvae.levels"), ({"codebook_size": 1}, "rqvae.codebook_size"),
    ({"estimator": "gumbel"}, "rqvae.estimator"), ({"hidden": [64, 0]}, "rqvae.hidden"),
    ({"beta": -1.0}, "rqvae.beta"), ({"dead_code_patience": -1}, "rqvae.dead_code_patience"),
    ({"lr": 0.0}, "rqvae.lr"), ({"fit_items": "test"}, "rqvae.fit_items"), ({"device": "tpu9"}, "rqvae.device"),
    ({"epochs": 1.5}, "rqvae.epochs"), ({"warmup_epochs": 200}, "rqvae.warmup_epochs"),
    ({"method": "vq"}, "rqvae.method"), ({"diversity_weight": -0.1}, "rqvae.diversity_weight"),
    ({"method": "opq", "codebook_size": 100}, "rqvae.codebook_size"), ({"opq_iters": 0}, "rqvae.opq_iters"),
    ({"method": "lsh", "codebook_size": 100}, "rqvae.codebook_size"), ({"codebooks": 3}, "unknown key"),
])
def test_config_errors_name_the_field(bad, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(RQVAEConfig, bad, "rqvae")


def test_config_parses_lists_as_tuples():
    cfg = from_dict(RQVAEConfig, {"hidden": [64, 32], "estimator": "rotation"}, "rqvae")
    assert cfg.hidden == (64, 32) and cfg.estimator == "rotation"
    assert from_dict(RQVAEConfig, None, "rqvae") == RQVAEConfig()
