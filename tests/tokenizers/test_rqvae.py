"""RQ-VAE tokenizer: quantiser invariants, anti-collapse machinery, training, and the stage on tiny files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lib.config import ConfigError, from_dict
from lib.tokenizers.rqvae import (
    RQVAE,
    ResidualQuantizer,
    RQVAEConfig,
    checkpoint,
    fit_and_encode,
    from_checkpoint,
    init_codebooks,
    kmeans,
    quantize_all,
    reset_dead_codes,
    rotate_onto,
    train,
)

ROOT = Path(__file__).resolve().parents[2]
TINY = dict(latent_dim=4, hidden=(32,), levels=2, codebook_size=8, batch_size=32, epochs=6, warmup_epochs=1,
            threads=1)


def clusters(n_clusters: int = 8, per: int = 25, dim: int = 16, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Embeddings (N+1, dim) like the embed stage's: unit-norm rows around well-separated centres, row 0 = 0."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n_clusters * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.vstack([np.zeros((1, dim)), x]).astype(np.float32)


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


def test_kmeans_is_deterministic_and_handles_few_points():
    x = torch.as_tensor(clusters(n_clusters=4, per=10)[1:])
    a = kmeans(x, 4, torch.Generator().manual_seed(3))
    b = kmeans(x, 4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    few = kmeans(x[:3], 5, torch.Generator().manual_seed(0))  # k > n: runs, centroids are data points
    assert few.shape == (5, 16) and torch.isfinite(few).all()


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


@pytest.mark.parametrize("bad, field", [
    ({"levels": 0}, "rqvae.levels"), ({"codebook_size": 1}, "rqvae.codebook_size"),
    ({"estimator": "gumbel"}, "rqvae.estimator"), ({"hidden": [64, 0]}, "rqvae.hidden"),
    ({"beta": -1.0}, "rqvae.beta"), ({"dead_code_patience": -1}, "rqvae.dead_code_patience"),
    ({"lr": 0.0}, "rqvae.lr"), ({"fit_items": "test"}, "rqvae.fit_items"), ({"device": "tpu9"}, "rqvae.device"),
    ({"epochs": 1.5}, "rqvae.epochs"), ({"warmup_epochs": 200}, "rqvae.warmup_epochs"),
    ({"codebooks": 3}, "unknown key"),
])
def test_config_errors_name_the_field(bad, field):
    with pytest.raises(ConfigError, match=field):
        from_dict(RQVAEConfig, bad, "rqvae")


def test_config_parses_lists_as_tuples():
    cfg = from_dict(RQVAEConfig, {"hidden": [64, 32], "estimator": "rotation"}, "rqvae")
    assert cfg.hidden == (64, 32) and cfg.estimator == "rotation"
    assert from_dict(RQVAEConfig, None, "rqvae") == RQVAEConfig()


# --- the stage script on tiny synthetic files ---------------------------------------------------------

def _stage_inputs(tmp: Path, emb: np.ndarray, n_items: int) -> list[str]:
    np.save(tmp / "emb.npy", emb)
    (tmp / "emb_meta.json").write_text(json.dumps({"model": "fake", "dim": emb.shape[1], "n_items": n_items}))
    (tmp / "split").mkdir(exist_ok=True)
    train_items = np.arange(1, n_items - 9)  # the last 10 items are cold
    pd.DataFrame({"user": 0, "item": train_items, "timestamp": 0}).to_parquet(tmp / "split/train.parquet")
    (tmp / "params.yaml").write_text(yaml.safe_dump({"rqvae": {**TINY, "hidden": [32]}}))
    return [sys.executable, str(ROOT / "stages/rqvae.py"), "--embeddings", str(tmp / "emb.npy"),
            "--embed-meta", str(tmp / "emb_meta.json"), "--split-dir", str(tmp / "split"),
            "--out-dir", str(tmp / "out"), "--metrics", str(tmp / "m.json"), "--plots-dir", str(tmp / "plots"),
            "--params", str(tmp / "params.yaml")]


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_stage_writes_unique_ids_meta_model_and_metrics(tmp_path):
    emb = clusters(n_clusters=4, per=10)
    n = len(emb) - 1
    p = _run(_stage_inputs(tmp_path, emb, n), tmp_path)
    assert p.returncode == 0, p.stderr
    codes = np.load(tmp_path / "out/codes.npy")
    meta = json.loads((tmp_path / "out/meta.json").read_text())
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert codes.shape == (n + 1, 3) and codes.dtype == np.int64 and (codes[0] == -1).all()
    assert len(np.unique(codes[1:], axis=0)) == n and (codes[1:, :2] < 8).all() and (codes[1:] >= 0).all()
    assert meta["method"] == "rqvae" and meta["levels"] == 2 and meta["n_levels"] == 3 and meta["n_items"] == n
    assert meta["codebook_sizes"][:2] == [8, 8] and meta["codebook_sizes"][2] == codes[1:, 2].max() + 1
    assert meta["token_offsets"] == [3, 11, 19] and meta["vocab_size"] == 19 + meta["codebook_sizes"][2]
    assert meta["fit_items"] == "train" and meta["fit_item_count"] == n - 10
    assert meta["embeddings"] == {"model": "fake", "dim": 16}
    assert {"recon_mse", "recon_cosine", "collision_rate", "largest_group", "colliding_groups", "train_seconds",
            "fit_item_count", "level_0", "level_1", "peak_memory_mb"} <= set(metrics)
    model = from_checkpoint(torch.load(tmp_path / "out/model.pt", weights_only=False))
    again, _, _ = quantize_all(model, torch.as_tensor(emb[1:]))
    assert np.array_equal(again.numpy(), codes[1:, :2])
    assert (tmp_path / "plots/plots/metrics/recon_mse.tsv").is_file()


def test_stage_rejects_misaligned_embeddings(tmp_path):
    emb = clusters(n_clusters=4, per=10)
    emb[0, 0] = 1.0
    p = _run(_stage_inputs(tmp_path, emb, len(emb) - 1), tmp_path)
    assert p.returncode != 0 and "row 0" in p.stderr and "Traceback" not in p.stderr
    emb[0, 0] = 0.0
    p = _run(_stage_inputs(tmp_path, emb, len(emb)), tmp_path)  # meta says one more item than rows
    assert p.returncode != 0 and "expected (42, dim)" in p.stderr
    args = _stage_inputs(tmp_path, emb, len(emb) - 1)
    (tmp_path / "split/train.parquet").unlink()
    p = _run(args, tmp_path)
    assert p.returncode != 0 and "train.parquet" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()
