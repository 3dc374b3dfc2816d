"""Residual k-means tokenizer: one code per cluster, error falling with depth, fit items, determinism."""
from __future__ import annotations

import numpy as np
import torch

from lib.tokenizers.rqkmeans import encode, tokenize
from lib.tokenizers.rqvae import RQVAEConfig
from tests.tokenizers.conftest import clusters


def test_separable_clusters_use_every_level0_code_one_per_cluster():
    # tight clusters: k-means++ then seeds one centroid per cluster (with noise 0.05 in 16 dims it misses a
    # cluster for about one seed in five, and Lloyd's iterations cannot repair that)
    emb = clusters(n_clusters=8, per=25, noise=0.01)
    raw, facts, _ = tokenize(emb, np.arange(1, len(emb)), RQVAEConfig(method="rqkmeans", levels=2, codebook_size=8))
    assert raw.shape == (200, 2) and raw.dtype == np.int64 and ((raw >= 0) & (raw < 8)).all()
    level0 = raw[:, 0].reshape(8, 25)  # row c = the members of cluster c
    assert len(np.unique(level0[:, 0])) == 8 and all(len(set(row)) == 1 for row in level0)
    assert facts["fit_item_count"] == 200 and 0 < facts["quant_rel"] < 1 and facts["quant_cosine"] > 0.9


def test_residual_sums_reconstruct_better_with_more_levels():
    emb = clusters(n_clusters=6, per=30, noise=0.3)  # loose clusters: every level has something to explain
    by_level = []
    _, facts, state = tokenize(emb, np.arange(1, len(emb)), RQVAEConfig(method="rqkmeans", levels=4, codebook_size=6),
                               lambda level, logs: by_level.append(logs["quant_mse"]))
    assert len(by_level) == 4 and all(a > b for a, b in zip(by_level, by_level[1:], strict=False))
    assert facts["quant_mse"] == round(by_level[-1], 8)
    books = state["codebooks"]
    assert books.shape == (4, 6, 16)
    # decoding the codes (sum of the chosen centroids) gives the reconstruction the error is measured on
    x = torch.as_tensor(emb[1:])
    codes, sums = encode(x, books)
    torch.testing.assert_close(sums[-1], sum(books[level][codes[:, level]] for level in range(4)))


def test_fit_on_some_items_encodes_every_item_and_is_seeded():
    emb = clusters(n_clusters=4, per=20)
    fit = np.arange(1, len(emb), 2)  # odd items only; each even item has fitted neighbours in its cluster
    cfg = RQVAEConfig(method="rqkmeans", levels=2, codebook_size=4, threads=1)
    raw, facts, _ = tokenize(emb, fit, cfg)
    assert raw.shape == (80, 2) and facts["fit_item_count"] == 40
    assert all(len(set(row)) == 1 for row in raw[:, 0].reshape(4, 20))  # cold items join their cluster's code
    again, _, _ = tokenize(emb, fit, cfg)
    assert np.array_equal(raw, again)
