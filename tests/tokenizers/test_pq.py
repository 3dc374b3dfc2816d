"""PQ and OPQ codes: row alignment, training-items-only fit, byte-for-byte reruns, error against baselines."""
from __future__ import annotations

import numpy as np
import pytest

from lib.config import ConfigError, from_dict
from lib.tokenizers.codes import semantic_ids
from lib.tokenizers.pq import assign, code_bits, decode, encode, opq_codes, pq_codes, reconstruct
from lib.tokenizers.rqvae import RQVAEConfig
from tests.tokenizers.conftest import clusters

TOKENIZE = {"pq": pq_codes, "opq": opq_codes}


def _cfg(method: str, **kw) -> RQVAEConfig:
    return RQVAEConfig(**{"method": method, "levels": 4, "codebook_size": 8, "threads": 1, **kw})


def _all(emb: np.ndarray) -> np.ndarray:
    return np.arange(1, len(emb))


def correlated(n: int = 400, dim: int = 16, rank: int = 4, seed: int = 0) -> np.ndarray:
    """(n+1, dim) embeddings whose dims are linear mixtures of `rank` shared factors (+ small noise), row 0 = 0.

    Every sub-space of PQ then sees the same few factors: its digits are redundant, which a rotation fixes.
    """
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, dim)) + 0.01 * rng.normal(size=(n, dim))
    return np.vstack([np.zeros((1, dim)), x]).astype(np.float32)


@pytest.mark.parametrize("method", ["pq", "opq"])
def test_codes_are_row_aligned_in_range_and_reencoded_from_the_state(method):
    x = clusters(n_clusters=4, per=10)[1:]
    emb = np.vstack([np.zeros((1, 16)), x, x[::-1]]).astype(np.float32)  # item 41 + j copies item 40 - j
    raw, facts, state = TOKENIZE[method](emb, _all(emb), _cfg(method))
    assert raw.shape == (80, 4) and raw.dtype == np.int64 and ((raw >= 0) & (raw < 8)).all()
    assert np.array_equal(raw[40:], raw[:40][::-1])  # equal content, equal codes, in the items' rows
    for item in (1, 17, 40, 80):  # row item - 1 of raw is item `item`: row 0 of the embeddings is padding
        assert np.array_equal(encode(emb[[item]], state), raw[[item - 1]])
    assert np.array_equal(encode(emb[1:], state), raw)
    assert state["centroids"].shape == (4, 8, 4) and state["rotation"].shape == (16, 16)
    rotation = state["rotation"].numpy()
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(16), atol=1e-5)  # orthonormal: a rotation
    assert (method == "pq") == np.array_equal(rotation, np.eye(16))
    assert state["config"]["method"] == method and facts["fit_item_count"] == 80
    assert 0 < facts["quant_rel"] < 1 and facts["quant_cosine"] > 0.9 and facts["fit_seconds"] >= 0


def test_assign_and_decode_on_a_hand_checked_case():
    centroids = np.array([[[0.0], [10.0]], [[-1.0], [1.0]]])  # 2 sub-spaces of 1 dim, 2 codes each
    x = np.array([[1.0, 0.9], [9.0, -2.0], [6.0, -0.5]])
    codes = assign(x, centroids)
    assert codes.tolist() == [[0, 1], [1, 0], [1, 0]]
    assert decode(codes, centroids).tolist() == [[0.0, 1.0], [10.0, -1.0], [10.0, -1.0]]


@pytest.mark.parametrize("method", ["pq", "opq"])
def test_a_cold_item_does_not_move_the_codebooks_and_is_still_encoded(method):
    emb = clusters(n_clusters=4, per=20)
    cold = 33
    fit = np.setdiff1d(_all(emb), [cold])
    raw, _, state = TOKENIZE[method](emb, fit, _cfg(method))
    moved = emb.copy()
    moved[cold] = 50 * np.random.default_rng(1).normal(size=16)  # far outside everything fitted on
    raw_moved, facts, state_moved = TOKENIZE[method](moved, fit, _cfg(method))
    for key in ("mean", "rotation", "centroids"):
        assert np.array_equal(state[key].numpy(), state_moved[key].numpy()), key
    others = np.arange(len(raw)) != cold - 1
    assert np.array_equal(raw[others], raw_moved[others]) and facts["fit_item_count"] == 79
    assert np.array_equal(raw_moved[cold - 1], encode(moved[[cold]], state_moved)[0])  # its own code, from its content
    assert not np.array_equal(raw[cold - 1], raw_moved[cold - 1])
    # and the fit does use the fit items: moving one of them changes the codebooks
    moved[cold + 1] = moved[cold]
    assert not np.array_equal(TOKENIZE[method](moved, fit, _cfg(method))[2]["centroids"].numpy(),
                              state["centroids"].numpy())


@pytest.mark.parametrize("method", ["pq", "opq"])
def test_reruns_give_the_same_bytes_and_the_seed_matters(method):
    emb = clusters(n_clusters=8, per=25, noise=0.3)
    raw, facts, state = TOKENIZE[method](emb, _all(emb), _cfg(method, seed=3))
    again, facts_again, state_again = TOKENIZE[method](emb, _all(emb), _cfg(method, seed=3))
    assert raw.tobytes() == again.tobytes()
    for key in ("mean", "rotation", "centroids"):
        assert state[key].numpy().tobytes() == state_again[key].numpy().tobytes(), key
    assert facts["quant_mse"] == facts_again["quant_mse"]
    other, _, _ = TOKENIZE[method](emb, _all(emb), _cfg(method, seed=4))
    assert not np.array_equal(raw, other)


def test_pq_reconstructs_clustered_data_far_better_than_random_codes():
    emb = clusters(n_clusters=8, per=25, noise=0.1)
    x = emb[1:].astype(np.float64)
    raw, facts, state = pq_codes(emb, _all(emb), _cfg("pq"))
    random = np.random.default_rng(0).integers(0, 8, size=raw.shape)
    random_mse = float(((reconstruct(random, state) - x) ** 2).mean())
    mse = float(((reconstruct(raw, state) - x) ** 2).mean())
    assert facts["quant_mse"] == round(mse, 8)
    assert mse < 0.2 * random_mse
    assert facts["quant_rel"] == round(mse / x.var(0).mean(), 6)


def test_opq_beats_pq_on_correlated_dimensions():
    emb = correlated()
    _, pq_facts, _ = pq_codes(emb, _all(emb), _cfg("pq"))
    _, opq_facts, _ = opq_codes(emb, _all(emb), _cfg("opq"))
    assert opq_facts["quant_mse"] < 0.5 * pq_facts["quant_mse"]  # about 0.15 for seeds 0-3


@pytest.mark.parametrize("method", ["pq", "opq"])
def test_clear_errors_for_shapes_faiss_would_refuse(method):
    emb = clusters(n_clusters=4, per=10)  # dim 16, 40 items
    with pytest.raises(ValueError, match="levels: .*dim 16 is not divisible by 5"):
        TOKENIZE[method](emb, _all(emb), _cfg(method, levels=5))
    with pytest.raises(ValueError, match="codebook_size: .*power of two"):
        TOKENIZE[method](emb, _all(emb), _cfg(method, codebook_size=6))
    with pytest.raises(ValueError, match="codebook_size: .*at least as many items as codes"):
        TOKENIZE[method](emb, np.arange(1, 6), _cfg(method))
    with pytest.raises(ConfigError, match=f"rqvae.codebook_size: method {method} needs a power of two"):
        from_dict(RQVAEConfig, {"method": method, "codebook_size": 100}, "rqvae")
    with pytest.raises(ConfigError, match="rqvae.pq_iters"):
        from_dict(RQVAEConfig, {"method": method, "pq_iters": 0}, "rqvae")
    assert code_bits(256) == 8 and code_bits(2) == 1


def test_semantic_ids_marks_parallel_digits_only_when_asked():
    raw = np.array([[0, 1], [0, 1], [1, 0]])
    codes, meta, diagnostics = semantic_ids(raw, [2, 2], "opq", parallel=True)
    assert meta["parallel"] is True and codes[1:, -1].tolist() == [0, 1, 0]  # the collision level as ever
    assert diagnostics["collision_rate"] == round(2 / 3, 6)
    assert "parallel" not in semantic_ids(raw, [2, 2], "rqkmeans")[1]


def test_pca_whitening_has_unit_variance_and_inverts_on_its_span():
    from lib.tokenizers.pq import pca_whitening
    x = correlated(n=300, dim=16, rank=4)[1:].astype(np.float64)
    xc = x - x.mean(0)
    proj, unproj = pca_whitening(xc, 4)
    z = xc @ proj  # (n, 4)
    np.testing.assert_allclose(z.var(0, ddof=1), np.ones(4), rtol=1e-6)  # whitened
    np.testing.assert_allclose(np.cov(z.T), np.eye(4), atol=1e-6)  # decorrelated
    assert np.abs(z @ unproj - xc).max() < 0.05  # rank 4 + small noise: the inverse restores the items
    with pytest.raises(ValueError, match="pca_dim"):
        pca_whitening(xc, 17)


@pytest.mark.parametrize("method", ["pq", "opq"])
def test_pca_dim_quantises_the_whitened_components_and_state_reencodes(method):
    emb = correlated(n=300, dim=16, rank=4)
    fit = np.arange(1, 201)  # fit on items 1..200 only: the projection must not see the others
    raw, facts, state = TOKENIZE[method](emb, fit, _cfg(method, pca_dim=8))
    assert state["projection"].shape == (16, 8) and state["unprojection"].shape == (8, 16)
    assert state["centroids"].shape == (4, 8, 2) and state["rotation"].shape == (8, 8)
    assert np.array_equal(encode(emb[1:], state), raw)  # model.pt re-encodes through the projection
    xc = emb[fit].astype(np.float64) - state["mean"].numpy()
    np.testing.assert_allclose((xc @ state["projection"].numpy()).var(0, ddof=1), np.ones(8), rtol=1e-6)
    assert facts["quant_cosine"] > 0.5 and facts["fit_item_count"] == 200
    plain = TOKENIZE[method](emb, fit, _cfg(method))[2]
    assert "projection" not in plain  # pca_dim 0: the state (and codes) as before the option existed


def test_pca_dim_errors_name_the_param():
    with pytest.raises(ConfigError, match="rqvae.pca_dim"):
        from_dict(RQVAEConfig, {"method": "rqvae", "pca_dim": 8}, "rqvae")
    with pytest.raises(ValueError, match="the pca_dim 12 is not divisible by 8"):
        from lib.tokenizers.pq import check_fit
        check_fit(16, 100, _cfg("opq", levels=8, pca_dim=12))
