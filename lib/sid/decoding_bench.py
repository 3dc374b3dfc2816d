"""The decoding benchmark (params section `decoding`): decoders of one trained generator, quality and speed.

Methods, all on one checkpoint and the same fixed seeded subset of validation users (choosing a
decoder is a selection, so never test users): our trie beam search at each of `widths`; greedy (that
search at width 1); Hugging Face `generate` under the trie callback, greedy and beam search at each of
`hf_widths` (lib/sid/decoding.py); `generate` unconstrained at each of `unconstrained_widths`. Every
method runs in the checkpoint's numerical mode (lib/sid/recommend.autocast: bfloat16 autocast for a
bf16-mixed run, as in its training and evaluation), the constrained ones exclude the user's history
in the search (decode.exclude_seen), and every list goes through the evaluator's seen filter
(lib/metrics.top_k, seen = history) before it is cut at K. No cold-start rule: it rewrites the list
after any decoder alike.

Per method: NDCG@10, HR@10, HR@100 (a list shorter than K simply misses), the invalid-ID rate
(generated code tuples that name no item, among all generated), distinct items in the users' top 10s,
users/s (wall time of the whole decoding, prompts and seen-item tables included) and, for the other
decoders, the top-10 overlap with our search at the same width.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch

from lib import metrics
from lib.sid.config import GPT2SidConfig
from lib.sid.decoding import greedy_users, hf_decode_users
from lib.sid.model import SidGPT2
from lib.sid.recommend import decode_users
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodingConfig:
    run: str = "gpt2_sid"  # a key of params runs.generators: its checkpoint is benchmarked
    # dvc.yaml cannot look a run's tokenizer and protocol up (no nested interpolation), so they are
    # repeated here; the stage checks them against the run's run.json
    tokenizer: str = "rqvae"
    protocol: str = "gts"
    users: int = 1000  # fixed random subset of validation users; 0 = all
    widths: tuple[int, ...] = (10, 20, 50, 100)  # our trie beam search
    hf_widths: tuple[int, ...] = (10, 100)  # HF generate, beam search under the trie callback
    unconstrained_widths: tuple[int, ...] = (10,)  # HF generate, plain beam search: how many IDs are invalid
    seed: int = 0  # the user subset
    threads: int = 1  # torch CPU threads: the speeds depend on it
    device: Literal["auto", "cpu", "gpu"] = "cpu"

    def validate(self) -> None:
        if min((*self.widths, *self.hf_widths, *self.unconstrained_widths), default=1) < 1:
            raise ValueError("widths, hf_widths, unconstrained_widths: every width must be >= 1")
        if self.users < 0 or self.threads < 0:
            raise ValueError("users and threads: must be >= 0")


def list_metrics(items: list[np.ndarray], histories: list, targets: np.ndarray) -> dict:
    """Ranked lists -> NDCG@10, HR@10, HR@100 and distinct items of the top 10s, after the seen filter."""
    top = metrics.top_k(items, 100, seen=histories)  # (U, 100), PAD-filled
    ranks = metrics.target_ranks(top, targets)
    top10 = np.unique(top[:, :10])
    return {"ndcg@10": float(metrics.ndcg(ranks, 10).mean()), "hr@10": float(metrics.hit_rate(ranks, 10).mean()),
            "hr@100": float(metrics.hit_rate(ranks, 100).mean()),
            "distinct_items@10": int(np.count_nonzero(top10 != metrics.PAD))}


def invalid_id_rate(codes: np.ndarray, trie: SidTrie) -> tuple[int, float]:
    """codes (U, W, C) of generated sequences (rows of -1: none) -> (sequences generated, share naming no item)."""
    gen = codes.reshape(-1, codes.shape[-1])
    gen = gen[~(gen == -1).all(axis=1)]
    return len(gen), float(np.mean(trie.item_of(gen) == 0)) if len(gen) else 0.0


def top_overlap(a: list[np.ndarray], b: list[np.ndarray], histories: list, k: int) -> float:
    """Mean share of the top k (after the seen filter) that two decoders' lists have in common."""
    ta, tb = metrics.top_k(a, k, seen=histories), metrics.top_k(b, k, seen=histories)
    return float(np.mean([len(set(x[x != metrics.PAD]) & set(y[y != metrics.PAD])) / k
                          for x, y in zip(ta, tb, strict=True)]))


def methods(cfg: DecodingConfig) -> list[tuple[str, str, int, bool]]:
    """(name, decoder, width, constrained) of every method, ours first: the others are compared with them."""
    out = [("greedy", "ours", 1, True)] + [(f"beam@{w}", "ours", w, True) for w in cfg.widths]
    out += [("hf_greedy", "hf", 1, True)] + [(f"hf_beam@{w}", "hf", w, True) for w in cfg.hf_widths]
    return out + [(f"hf_unconstrained@{w}", "hf", w, False) for w in cfg.unconstrained_widths]


def benchmark(model: SidGPT2, vocab: SidVocab, trie: SidTrie, rows: pd.DataFrame, sid: GPT2SidConfig,
              cfg: DecodingConfig, device: torch.device | str = "cpu") -> dict:
    """Evaluation rows (user, history, target) of one checkpoint (its config `sid`) -> the benchmark's JSON."""
    users, hist = rows["user"].to_numpy(np.int64), list(rows["history"])
    targets = rows["target"].to_numpy(np.int64)
    greedy_users(model, vocab, trie, users[:8], hist[:8], sid, device)  # warm-up: one-time kernel setup untimed
    ours, out = {}, {}  # ours: width -> our search's lists
    for name, decoder, width, constrained in methods(cfg):
        t0 = time.perf_counter()
        if decoder == "hf":
            items, codes = hf_decode_users(model, vocab, trie, users, hist, sid, width, constrained, device)
        elif width == 1:
            items, codes = greedy_users(model, vocab, trie, users, hist, sid, device)
        else:
            wide = replace(sid, decode=replace(sid.decode, beam_width=width, cold_every=0), top_k=width)
            items, codes = decode_users(model, vocab, trie, users, hist, wide, device)
        seconds = time.perf_counter() - t0
        generated, invalid = invalid_id_rate(codes, trie)
        m = {"decoder": decoder, "width": width, "constrained": constrained, **list_metrics(items, hist, targets),
             "invalid_id_rate": invalid, "generated": generated}
        if decoder == "ours":
            ours[width] = items
        elif width in ours:
            m["top10_overlap_with_ours"] = top_overlap(items, ours[width], hist, min(10, width))
        m |= {"seconds": round(seconds, 2), "users_per_second": round(len(users) / seconds, 1)}
        out[name] = {k: round(v, 6) if isinstance(v, float) else v for k, v in m.items()}
        log.info("%s: NDCG@10 %.4f, HR@100 %.4f, invalid %.4f, %.1f users/s", name, m["ndcg@10"], m["hr@100"],
                 invalid, m["users_per_second"])
    return {"users": len(users), "threads": torch.get_num_threads(), "precision": sid.train.precision,
            "exclude_seen": sid.decode.exclude_seen, "trie_softmax": model.cfg.trie_softmax,
            "batch_size": sid.decode.batch_size, "cold_rule": "off", "methods": out}
