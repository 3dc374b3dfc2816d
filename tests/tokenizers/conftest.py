"""Tiny seeded embeddings for the tokenizer tests: well-separated unit-norm clusters, row 0 = padding."""
from __future__ import annotations

import numpy as np

# an RQ-VAE small enough to train in a second on CPU
TINY = dict(latent_dim=4, hidden=(32,), levels=2, codebook_size=8, batch_size=32, epochs=6, warmup_epochs=1,
            threads=1)


def clusters(n_clusters: int = 8, per: int = 25, dim: int = 16, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Embeddings (N+1, dim) like the embed stage's: unit-norm rows around well-separated centres, row 0 = 0.

    Item 1 + c * per + j is member j of cluster c.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim))
    x = np.repeat(centres, per, axis=0) + noise * rng.normal(size=(n_clusters * per, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.vstack([np.zeros((1, dim)), x]).astype(np.float32)
