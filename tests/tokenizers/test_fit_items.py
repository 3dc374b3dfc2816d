"""Every tokenizer fits on the fit items only: an item outside them (first seen after the training cut-off)
never moves a codebook, a rotation, a PCA or a network, so every other item keeps its codes."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.tokenizers import pq, rqkmeans, rqvae, simple
from lib.tokenizers.rqvae import RQVAEConfig
from tests.tokenizers.conftest import TINY, clusters

TOKENIZE = {"rqvae": rqvae.tokenize, "rqkmeans": rqkmeans.tokenize, "random": simple.random_codes,
            "lsh": simple.lsh_codes, "pq": pq.pq_codes, "opq": pq.opq_codes, "opq_pca": pq.opq_codes}


def _cfg(name: str) -> RQVAEConfig:
    method = name.removesuffix("_pca")
    extra = {"pca_dim": 8} if name.endswith("_pca") else {}
    return RQVAEConfig(**{**TINY, "method": method, "codebook_size": 4, "pq_iters": 5, "opq_iters": 3,
                          "device": "cpu", **extra})


def _tensors(state) -> dict[str, np.ndarray]:
    """The model.pt contents as flat arrays (weights of a network, centroids, rotations, projections...)."""
    out = {}
    for key, value in state.items():
        if isinstance(value, dict):
            out |= {f"{key}.{k}": v for k, v in _tensors(value).items()}
        elif torch.is_tensor(value) or isinstance(value, np.ndarray):
            out[key] = np.asarray(value)
    return out


@pytest.mark.parametrize("name", sorted(TOKENIZE))
def test_an_item_outside_the_fit_items_changes_nothing_but_its_own_code(name):
    emb = clusters(n_clusters=4, per=10)  # 40 items
    future = np.array([7, 25, 40])  # first seen after the cut-off: not fit on
    fit_ids = np.setdiff1d(np.arange(1, 41), future)
    raw, facts, state = TOKENIZE[name](emb, fit_ids, _cfg(name))
    moved = emb.copy()
    moved[future] = np.random.default_rng(3).normal(size=(3, emb.shape[1])).astype(np.float32)
    raw_moved, _, state_moved = TOKENIZE[name](moved, fit_ids, _cfg(name))
    others = np.setdiff1d(np.arange(40), future - 1)
    assert np.array_equal(raw[others], raw_moved[others])
    a, b = _tensors(state), _tensors(state_moved)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a), name
    if name.endswith("_pca"):
        assert "projection" in a  # the PCA/whitening is part of the fit
    assert facts["fit_item_count"] == (0 if name in ("random", "lsh") else len(fit_ids))
    if name not in ("random", "lsh"):  # and the fit does read the fit items: moving one changes it
        moved[fit_ids[0]] = moved[future[0]]
        c = _tensors(TOKENIZE[name](moved, fit_ids, _cfg(name))[2])
        assert any(not np.array_equal(a[k], c[k]) for k in a), name
