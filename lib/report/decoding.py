"""The Decoding section: metrics/decoding.json (stage `decoding`, lib/sid/decoding_bench.py) as a table."""
from __future__ import annotations

from lib.report.tables import table

COLUMNS = ("ndcg@10", "hr@10", "hr@100", "invalid_id_rate", "distinct_items@10", "users_per_second",
           "top10_overlap_with_ours")


def decoding_section(bench: dict) -> list[str]:
    """Intro sentence and one row per decoding method, in the benchmark's order (ours first)."""
    threads = bench.get("threads")
    intro = (f"Decoders of the generator `{bench.get('run')}` on {bench.get('users')} validation users (seed "
             f"{bench.get('seed')}; validation, not test: choosing a decoder is a selection), the same checkpoint and "
             f"numerical mode (`{bench.get('precision')}`) for every method, {threads} torch thread"
             f"{'s' * (threads != 1)}, batches of {bench.get('batch_size')} users, no cold-start rule. `ours` = "
             "the vectorised trie beam search (greedy = it at width 1); `hf` = GPT-2's `generate` (greedy or beam "
             "search) with the trie enforced by a `prefix_allowed_tokens_fn` callback and its scores renormalised "
             "over the allowed codes, or unconstrained. "
             + ("The constrained searches never produce a seen item; " if bench.get("exclude_seen") else "")
             + "every list is seen-filtered as by the evaluator before it is cut at K; a list shorter than K misses. "
             "Invalid IDs = generated code tuples that name no item; distinct = items in all users' top 10s; "
             "overlap = share of the top 10 shared with `ours` at the same width."
             + (" The generator is trained with the trie softmax (only the codes that continue a prefix to an item "
                "compete), so the logits of all other tokens are never trained: without the trie, decoding emits "
                "arbitrary tuples, and the constraint is part of the model, not an optional decoding trick."
                if bench.get("trie_softmax") else ""))
    rows = [[name, m.get("decoder"), m.get("width"), "yes" if m.get("constrained") else "no",
             *(m.get(c) for c in COLUMNS)] for name, m in bench.get("methods", {}).items()]
    head = ["method", "decoder", "width", "trie", "NDCG@10", "HR@10", "HR@100", "invalid IDs", "distinct top-10",
            "users/s", "overlap"]
    return ["## Decoding (validation)", "", intro, "", *table(head, rows), ""]
