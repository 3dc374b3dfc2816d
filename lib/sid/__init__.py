"""Generative retrieval over Semantic IDs: vocabulary, prefix trie, GPT-2 generator, constrained beam search."""
