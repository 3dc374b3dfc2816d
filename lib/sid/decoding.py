"""Other decoders of the Semantic-ID generator, for the decoding benchmark: greedy and Hugging Face `generate`.

Our search (lib/sid/beam.py) is the one the study uses. Here: greedy decoding, which is that search at
width 1 (a top-1 over one beam's masked log-probabilities is the per-step argmax), and the GPT-2 LM's
own `generate` (beam search, or greedy at width 1) with the trie enforced through a
`prefix_allowed_tokens_fn` callback, one Python call per beam and step, or unconstrained (plain beam
search over the whole vocabulary) to show how many generated code tuples name no item.

The callback allows the codes that continue the beam's prefix to a real item and, with
`decode.exclude_seen`, not to a prefix whose items are all in the user's history (SidTrie.exhausted),
the rule our search applies at every level: at the last level that excludes exactly the seen items,
and no beam is ever spent on a prefix that can only end in one. `generate` normalises the logits over
the whole vocabulary before the callback masks them; with the model's `trie_softmax` the scores are
renormalised over the allowed codes (`renormalize_logits`), so both searches rank with the model's
own distribution: they return the same lists without seen-item exclusion (tests/sid/test_decoding.py),
and differ where a seen item's mass is renormalised onto its siblings, and in bfloat16, where ties of
rounded logits are broken in another order. `generate` also copies each prompt W times and encodes
every copy, where our search encodes it once and repeats its cache.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from transformers import GenerationConfig

from lib.sid.beam import length_batches
from lib.sid.config import GPT2SidConfig
from lib.sid.model import SidGPT2
from lib.sid.recommend import autocast, decode_users, prompt
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab

UNFILLED = -1e9  # transformers' beam search: the score of a returned beam that holds no hypothesis
NOT_A_CODE = -2  # in generated codes: a token outside its column's code range (-1 rows: no sequence, as decode_users)


def greedy_users(model: SidGPT2, vocab: SidVocab, trie: SidTrie, users: np.ndarray, histories: list,
                 cfg: GPT2SidConfig, device: torch.device | str = "cpu") -> tuple[list[np.ndarray], np.ndarray]:
    """Greedy decoding, one item per user: our trie beam search at width 1 (no cold-start rule).

    -> (per user [item] or [] when every item is seen, codes (U, 1, C) as decode_users).
    """
    one = replace(cfg, decode=replace(cfg.decode, beam_width=1, cold_every=0), top_k=1)
    return decode_users(model, vocab, trie, users, histories, one, device)


def prefix_constraint(trie: SidTrie, offsets: list[int], prompt_len: int,
                      exhausted: list[torch.Tensor] | None = None) -> Callable[[int, torch.Tensor], list[int]]:
    """`prefix_allowed_tokens_fn` for GPT2LMHeadModel.generate on prompts of `prompt_len` tokens.

    The callback gets (batch row, one beam's tokens so far (T,)) and returns the allowed next tokens:
    the trie children of the generated prefix, less the exhausted ones (`exhausted[d - 1]` (B, nodes at
    depth d), as beam_search takes it).
    """
    children = [c.cpu().numpy() for c in trie.children]
    ex = None if exhausted is None else [e.cpu().numpy() for e in exhausted]

    def allowed(row: int, tokens: torch.Tensor) -> list[int]:
        node = 0  # the root
        for d, tok in enumerate(tokens[prompt_len:].tolist()):
            node = children[d][node, tok - offsets[d]]
        d = len(tokens) - prompt_len
        child = children[d][node]  # (S,) next node per code, -1 = no item
        ok = child >= 0
        if ex is not None:
            ok &= ~ex[d][row, np.maximum(child, 0)]
        return (np.flatnonzero(ok) + offsets[d]).tolist()

    return allowed


def token_codes(tokens: np.ndarray, vocab: SidVocab) -> np.ndarray:
    """Generated tokens (..., C) -> column-local codes, NOT_A_CODE where a token is not a code of its column."""
    codes = np.asarray(tokens, dtype=np.int64) - vocab.offsets
    return np.where((codes >= 0) & (codes < vocab.sizes), codes, NOT_A_CODE)


def hf_search(model: SidGPT2, prompts: torch.Tensor, trie: SidTrie, vocab: SidVocab, width: int,
              exhausted: list[torch.Tensor] | None = None,
              constrained: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """prompts (B, T) equal-length -> (generated tokens (B, W, C), best first; filled (B, W) bool).

    `generate` always returns W sequences; a beam it never filled (fewer than W hypotheses exist, as
    when W exceeds the reachable items) carries its score UNFILLED and arbitrary tokens, and is marked
    False. Exactly C tokens are generated (eos is held back until then); width 1 = greedy search.
    """
    b, t = prompts.shape
    c = vocab.n_levels
    beam = {"length_penalty": 0.0, "output_scores": True} if width > 1 else {}  # scores: summed log-probs
    gen = GenerationConfig(max_new_tokens=c, min_new_tokens=c, num_beams=width, num_return_sequences=width,
                           do_sample=False, renormalize_logits=constrained and model.cfg.trie_softmax,
                           bos_token_id=vocab.bos, eos_token_id=vocab.eos, pad_token_id=vocab.pad,
                           return_dict_in_generate=True, **beam)
    fn = prefix_constraint(trie, vocab.offsets.tolist(), t, exhausted) if constrained else None
    out = model.lm.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), generation_config=gen,
                            prefix_allowed_tokens_fn=fn)
    filled = (out.sequences_scores > UNFILLED) if width > 1 else torch.ones(b, dtype=torch.bool)
    return out.sequences[:, t:].reshape(b, width, c), filled.reshape(b, width)


@torch.no_grad()
def hf_decode_users(model: SidGPT2, vocab: SidVocab, trie: SidTrie, users: np.ndarray, histories: list,
                    cfg: GPT2SidConfig, width: int, constrained: bool = True,
                    device: torch.device | str = "cpu") -> tuple[list[np.ndarray], np.ndarray]:
    """`generate` for every user, batched by prompt length like decode_users, in the same numerical mode.

    -> (per user the distinct real items of its W sequences, best first; codes (U, W, C) of every
    sequence, NOT_A_CODE where a token is not a code of its column, rows of -1 for unfilled beams).
    With fewer than W real items reachable, `generate` may also repeat an item; the list keeps it once.
    """
    model.eval().to(device)
    tokens = vocab.item_tokens()
    prompts = [prompt(vocab, u, h, model.cfg.max_len, tokens) for u, h in zip(users, histories, strict=True)]
    out: list = [None] * len(prompts)
    codes = np.full((len(prompts), width, vocab.n_levels), -1, dtype=np.int64)
    for rows in length_batches(np.array([len(p) for p in prompts]), cfg.decode.batch_size):
        x = torch.from_numpy(np.stack([prompts[i] for i in rows])).to(device)
        ex = None
        if constrained and cfg.decode.exclude_seen:
            hist = [histories[i] for i in rows]
            ex = [trie.exhausted(hist, d) for d in range(1, vocab.n_levels + 1)]
        with autocast(cfg, device):
            tok, filled = hf_search(model, x, trie, vocab, width, ex, constrained)
        gen = np.where(filled.cpu().numpy()[..., None], token_codes(tok.cpu().numpy(), vocab), -1)
        items = trie.item_of(gen.reshape(-1, vocab.n_levels)).reshape(len(rows), width)
        for j, i in enumerate(rows):
            codes[i] = gen[j]
            real = items[j][items[j] > 0]
            out[i] = real[np.sort(np.unique(real, return_index=True)[1])]  # first occurrence, in beam order
    return out, codes
