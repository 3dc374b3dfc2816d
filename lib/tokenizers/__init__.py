"""Semantic-ID tokenizers: item content embeddings -> a short unique code tuple per item.

`rqvae` holds the RQ-VAE of TIGER (Rajput et al. 2023) and the `rqvae` section's config; `rqkmeans`
residual k-means; `simple` the random and LSH ablations; `kmeans` the torch k-means the first two
share; `codes` the tokenizer-independent part (collision level, token layout, diagnostics) that
every tokenizer's raw codes go through.
"""
