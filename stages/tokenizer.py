"""Stage `tokenizer@<name>`: item vectors -> Semantic IDs, made unique by one extra level.

The config is params `rqvae` with `tokenizers.<name>.set` overridden; the entry's `vectors` names the item
vectors it reads (data/vectors/<vectors>, lib/vectors.py); `method` picks the tokenizer:
rqvae (TIGER's RQ-VAE), rqkmeans (residual k-means), random or lsh (TIGER's ablations), pq or opq
((optimised) product quantisation, RPG's long parallel IDs). Every method writes the same codes.npy /
meta.json, so downstream stages never change; pq/opq add `parallel: true` to meta.json (unordered
digits) and their centroids. These (--codes-dir) are committed to git: a fresh clone reads them instead of
refitting (a fit's float arithmetic may differ between CPUs); the method's whole state (--state-dir) is cached.
The fit items are the training items of the split given by --split-dir (the entry's `protocol`),
all known at the models' training cut-off by the split's catalogue.parquet (lib/catalogue.py), which also
orders the collision level by arrival.
"""
import io
import resource

import numpy as np
import pandas as pd
import torch

from _catalogue import load_catalogue
from _common import checked, setup_logging, stage_args
from lib.catalogue import arrival_order, training_mask
from lib.config import load_table_entry
from lib.io import atomic_dir, atomic_path, read_json, write_csv, write_json, write_npy
from lib.tokenizers import pq, rqkmeans, rqvae, simple
from lib.tokenizers.codes import TokenizerSpec, check_embeddings, code_usage, fit_item_ids, semantic_ids
from lib.tokenizers.rqvae import RQVAEConfig
from lib.vectors import check_vectors_meta

# method -> tokenize(embeddings, fit_ids, cfg, on_step) -> (raw codes (N, levels), facts, model.pt contents)
TOKENIZERS = {"rqvae": rqvae.tokenize, "rqkmeans": rqkmeans.tokenize,
              "random": simple.random_codes, "lsh": simple.lsh_codes, "pq": pq.pq_codes, "opq": pq.opq_codes}


def compact(codes: np.ndarray) -> np.ndarray:
    """The codes in the smallest signed integer type that holds them (int16 for codebooks up to 32,768):
    codes.npy is committed, so its size is the repository's."""
    for dtype in (np.int16, np.int32):
        if codes.min() >= np.iinfo(dtype).min and codes.max() <= np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes.astype(np.int64)


def _name_flag(p) -> None:
    p.add_argument("--name", required=True, help="a key of params `tokenizers`")


def main(argv=None) -> None:
    args = stage_args(__doc__, {
        "embeddings": "item vectors .npy (N+1, dim), row 0 = padding (data/vectors/<vectors>)",
        "embed-meta": "the vectors' meta.json (name, protocol, dim, n_items)",
        "split-dir": "split directory: train.parquet gives the fit items (also under a refit protocol), "
                     "catalogue.parquet the items known at the cut-off and their arrival order",
        "codes-dir": "output, committed: codes.npy (N+1, levels+1) in the smallest integer type that holds them, "
                     "meta.json, and for pq/opq centroids.npy (what runs read)",
        "state-dir": "output, cached: model.pt (the method's whole state)",
        "metrics": "output: metrics JSON",
        "plots-dir": "output: dvclive curves (rqvae: per epoch; rqkmeans: per level)",
    }, extra=_name_flag, argv=argv)
    spec, cfg = checked(args.params, lambda prm: load_table_entry(prm, "tokenizers", args.name, "rqvae",
                                                                   RQVAEConfig, TokenizerSpec))
    setup_logging()
    try:
        emb_meta = read_json(args.embed_meta)
        check_vectors_meta(emb_meta, spec.vectors, spec.protocol, args.embed_meta)
        emb = np.load(args.embeddings)
        check_embeddings(emb, emb_meta["n_items"], emb_meta.get("dim"))
        cat = load_catalogue(args.split_dir, emb_meta["n_items"])
        # Fit on `train` (cut-off T_val) under every protocol: a refit protocol's final model trains on train_full,
        # but the epoch count it reuses is chosen by a model trained on `train` with these same codes, and that
        # model must not read the content of items first seen after T_val (issue 29).
        known = training_mask(cat, refit=False)
        train_items = (pd.read_parquet(args.split_dir / "train.parquet", columns=["item"])["item"].to_numpy()
                       if cfg.fit_items == "train" else None)
        fit_ids = fit_item_ids(emb_meta["n_items"], cfg.fit_items, train_items, known)
        if cfg.method in pq.METHODS:
            pq.check_fit(emb.shape[1], len(fit_ids), cfg)  # dim and fit-set size, before fitting anything
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None

    from dvclive import Live  # only the stage logs; lib stays logger-agnostic
    with atomic_dir(args.plots_dir) as plots:  # the committed curves are replaced only on success
        with Live(dir=str(plots), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            def on_step(step: int, logs: dict) -> None:
                for name, value in logs.items():
                    live.log_metric(name, value)
                live.next_step()

            raw, facts, state = TOKENIZERS[cfg.method](emb, fit_ids, cfg, on_step)
        codes, meta, diagnostics = semantic_ids(raw, [cfg.codebook_size] * cfg.levels, cfg.method,
                                                parallel=cfg.method in pq.METHODS, order=arrival_order(cat))
        meta |= {"name": args.name, "vectors": spec.vectors, "protocol": spec.protocol,
                 "fit_items": cfg.fit_items, "fit_item_count": facts["fit_item_count"],
                 "embeddings": {"model": emb_meta.get("model"), "dim": int(emb.shape[1])}}
        with atomic_dir(args.codes_dir) as out:  # committed: the same bytes for every later run on any machine
            write_npy(compact(codes), out / "codes.npy")
            write_json(meta, out / "meta.json")
            if "centroids" in state:  # RPG's digit_init codebook
                write_npy(state["centroids"].numpy(), out / "centroids.npy")
        buffer = io.BytesIO()  # torch.save to a path records that (random, temporary) name in the archive
        torch.save(state, buffer)
        with atomic_path(args.state_dir / "model.pt") as tmp:
            tmp.write_bytes(buffer.getvalue())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        write_json({"method": cfg.method, "protocol": spec.protocol, "levels": cfg.levels, **facts,
                    "known_items": int(known.sum()), **diagnostics,
                    "n_items": meta["n_items"], "vocab_size": meta["vocab_size"], "peak_memory_mb": round(peak, 1)},
                   args.metrics)
        write_csv(code_usage(codes, cfg.levels), plots / "code_usage.csv")


if __name__ == "__main__":
    main()
