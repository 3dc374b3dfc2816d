"""One tokenizer fit, whatever the method: the registry of methods and the steps they all share.

The fit items are the items with a training interaction (`fit_items: train`) among those known at the
models' training cut-off (T_val, lib/catalogue.py), under every protocol: a refit protocol's final model
trains on train_full, but the epoch count it reuses is chosen by a model trained on `train` with these
same codes, and that model must not read the content of items first seen after T_val (issue 29). Every
item is then encoded; the collision level orders items by arrival (lib/tokenizers/codes.py).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib.catalogue import arrival_order, training_mask
from lib.tokenizers import pq, rqkmeans, rqvae, simple
from lib.tokenizers.codes import TokenizerSpec, check_embeddings, fit_item_ids, semantic_ids
from lib.tokenizers.rqvae import RQVAEConfig

# method -> tokenize(embeddings, fit_ids, cfg, on_step) -> (raw codes (N, levels), facts, model.pt contents)
TOKENIZERS = {"rqvae": rqvae.tokenize, "rqkmeans": rqkmeans.tokenize,
              "random": simple.random_codes, "lsh": simple.lsh_codes, "pq": pq.pq_codes, "opq": pq.opq_codes}


@dataclass
class Tokenized:
    codes: np.ndarray  # (N+1, levels+1) unique Semantic IDs, row 0 = padding
    meta: dict  # what readers need: levels, codebook sizes, token layout, name, vectors, protocol, ...
    state: dict  # the method's whole state (model.pt)
    facts: dict  # for the metrics file


def compact(codes: np.ndarray) -> np.ndarray:
    """The codes in the smallest signed integer type that holds them (int16 for codebooks up to 32,768):
    codes.npy is committed, so its size is the repository's."""
    for dtype in (np.int16, np.int32):
        if codes.min() >= np.iinfo(dtype).min and codes.max() <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes.astype(np.int64)


def fit_ids(emb: np.ndarray, emb_meta: dict, catalogue: pd.DataFrame, train_items: np.ndarray | None,
            cfg: RQVAEConfig) -> tuple[np.ndarray, np.ndarray]:
    """(the item ids to fit on, the (N+1,) mask of items known at the training cut-off); ValueError (before
    any fitting) on embeddings that do not match their meta or a fit set the method cannot use."""
    check_embeddings(emb, emb_meta["n_items"], emb_meta.get("dim"))
    known = training_mask(catalogue, refit=False)
    ids = fit_item_ids(emb_meta["n_items"], cfg.fit_items, train_items if cfg.fit_items == "train" else None, known)
    if cfg.method in pq.METHODS:
        pq.check_fit(emb.shape[1], len(ids), cfg)  # dim and fit-set size
    return ids, known


def tokenize(name: str, spec: TokenizerSpec, cfg: RQVAEConfig, emb: np.ndarray, emb_meta: dict,
             catalogue: pd.DataFrame, ids: np.ndarray, known: np.ndarray,
             on_step: Callable[[int, dict], None]) -> Tokenized:
    """Fit `cfg.method` on the items `ids` (fit_ids), encode every item and make the codes unique."""
    raw, facts, state = TOKENIZERS[cfg.method](emb, ids, cfg, on_step)
    codes, meta, diagnostics = semantic_ids(raw, [cfg.codebook_size] * cfg.levels, cfg.method,
                                            parallel=cfg.method in pq.METHODS, order=arrival_order(catalogue))
    meta |= {"name": name, "vectors": spec.vectors, "protocol": spec.protocol,
             "fit_items": cfg.fit_items, "fit_item_count": facts["fit_item_count"],
             "embeddings": {"model": emb_meta.get("model"), "dim": int(emb.shape[1])}}
    facts = {"method": cfg.method, "protocol": spec.protocol, "levels": cfg.levels, **facts,
             "known_items": int(known.sum()), **diagnostics, "n_items": meta["n_items"],
             "vocab_size": meta["vocab_size"]}
    return Tokenized(codes, meta, state, facts)
