"""Random and LSH codes: range, seeding, uniformity, hand-checked hashes, scale invariance, locality."""
from __future__ import annotations

import numpy as np
import pytest

from lib.config import ConfigError, from_dict
from lib.tokenizers.rqvae import RQVAEConfig
from lib.tokenizers.simple import hash_codes, lsh_bits, lsh_codes, random_codes
from tests.tokenizers.conftest import clusters

NO_FIT = np.array([], dtype=np.int64)  # neither method fits anything


def test_random_codes_are_in_range_seeded_and_roughly_uniform():
    emb = np.zeros((20_001, 2), dtype=np.float32)
    cfg = RQVAEConfig(method="random", levels=3, codebook_size=8, seed=1)
    raw, facts, _ = random_codes(emb, NO_FIT, cfg)
    assert raw.shape == (20_000, 3) and raw.dtype == np.int64 and ((raw >= 0) & (raw < 8)).all()
    assert np.array_equal(raw, random_codes(emb, NO_FIT, cfg)[0])
    assert not np.array_equal(raw, random_codes(emb, NO_FIT, RQVAEConfig(levels=3, codebook_size=8, seed=2))[0])
    for level in range(3):  # 2,500 expected per code, sd ~47: 10% is over 5 sd
        assert np.abs(np.bincount(raw[:, level], minlength=8) - 2_500).max() < 250
    assert facts["fit_item_count"] == 0


def test_hash_codes_on_a_hand_checked_case():
    planes = np.array([[[1.0, 0.0], [0.0, 1.0]]])  # one level, bit 0 = [x > 0], bit 1 = [y > 0]
    x = np.array([[1.0, -1.0], [-1.0, 1.0], [1.0, 1.0], [-1.0, -1.0], [0.0, 0.0]])
    assert hash_codes(x, planes).tolist() == [[1], [2], [3], [0], [0]]


def test_lsh_codes_in_range_identical_and_positively_scaled_items_agree():
    x = clusters(n_clusters=4, per=10)[1:]
    emb = np.vstack([np.zeros((1, 16)), x, x, 2 * x, 0.5 * x]).astype(np.float32)  # items 41..80 copy 1..40
    raw, facts, state = lsh_codes(emb, NO_FIT, RQVAEConfig(method="lsh", levels=3, codebook_size=16, seed=0))
    assert raw.shape == (160, 3) and raw.dtype == np.int64 and ((raw >= 0) & (raw < 16)).all()
    assert np.array_equal(raw[:40], raw[40:80]) and np.array_equal(raw[:40], raw[80:120])
    assert np.array_equal(raw[:40], raw[120:])
    assert state["planes"].shape == (3, 4, 16) and facts["fit_item_count"] == 0
    assert len(np.unique(raw[:, 0])) > 1


def test_lsh_is_local_items_of_one_cluster_share_more_codes():
    raw, _, _ = lsh_codes(clusters(n_clusters=8, per=25, noise=0.05), NO_FIT,
                          RQVAEConfig(method="lsh", levels=2, codebook_size=16))
    same = raw[:, None, :] == raw[None, :, :]  # (N, N, levels)
    cluster = np.repeat(np.arange(8), 25)
    within = cluster[:, None] == cluster[None, :]
    assert same[within].mean() > 0.8 > 0.2 > same[~within].mean()


def test_lsh_rejects_codebook_sizes_that_are_not_powers_of_two():
    assert lsh_bits(256) == 8 and lsh_bits(2) == 1
    for bad in (100, 6, 1):
        with pytest.raises(ValueError, match="codebook_size"):
            lsh_bits(bad)
    with pytest.raises(ConfigError, match="rqvae.codebook_size: method lsh needs a power of two"):
        from_dict(RQVAEConfig, {"method": "lsh", "codebook_size": 100}, "rqvae")
    assert from_dict(RQVAEConfig, {"method": "rqvae", "codebook_size": 100}, "rqvae").codebook_size == 100
