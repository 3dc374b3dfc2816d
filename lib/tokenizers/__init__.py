"""Semantic-ID tokenizers: item content embeddings -> a short unique code tuple per item.

`rqvae` holds the RQ-VAE of TIGER (Rajput et al. 2023); `codes` the tokenizer-independent part
(collision level, token layout, diagnostics) that every tokenizer's raw codes go through.
"""
