"""Stage `tokenizer@<name>`: item vectors -> Semantic IDs, made unique by one extra level.

The config is params `rqvae` with `tokenizers.<name>.set` overridden; the entry's `vectors` names the item
vectors it reads (data/vectors/<vectors>, lib/vectors.py); `method` picks the tokenizer:
rqvae (TIGER's RQ-VAE), rqkmeans (residual k-means), random or lsh (TIGER's ablations), pq or opq
((optimised) product quantisation, RPG's long parallel IDs). Every method writes the same codes.npy /
meta.json, so downstream stages never change; pq/opq add `parallel: true` to meta.json (unordered
digits) and their centroids. These (--codes-dir) are committed to git: a fresh clone reads them instead of
refitting (a fit's float arithmetic may differ between CPUs); the method's whole state (--state-dir) is cached.
The fit items are the training items of the split given by --split-dir (the entry's `protocol`),
all known at the models' training cut-off by the split's catalogue.parquet, which also orders the collision
level by arrival (lib/tokenizers/fit.py).
"""
import io
import resource

import numpy as np
import pandas as pd
import torch

from _catalogue import load_catalogue
from _common import checked, setup_logging, stage_args
from lib.config import load_table_entry
from lib.io import atomic_dir, atomic_path, read_json, write_csv, write_json, write_npy
from lib.tokenizers.codes import TokenizerSpec, code_usage
from lib.tokenizers.fit import compact, fit_ids, tokenize
from lib.tokenizers.rqvae import RQVAEConfig
from lib.vectors import check_vectors_meta


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
        cat = load_catalogue(args.split_dir, emb_meta["n_items"])
        train_items = pd.read_parquet(args.split_dir / "train.parquet", columns=["item"])["item"].to_numpy()
        ids, known = fit_ids(emb, emb_meta, cat, train_items, cfg)
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None

    from dvclive import Live  # only the stage logs; lib stays logger-agnostic
    with atomic_dir(args.plots_dir) as plots:  # the committed curves are replaced only on success
        with Live(dir=str(plots), dvcyaml=False, save_dvc_exp=False, report=None) as live:
            def on_step(step: int, logs: dict) -> None:
                for name, value in logs.items():
                    live.log_metric(name, value)
                live.next_step()

            out = tokenize(args.name, spec, cfg, emb, emb_meta, cat, ids, known, on_step)
        with atomic_dir(args.codes_dir) as codes_dir:  # committed: the same bytes for every later run on any machine
            write_npy(compact(out.codes), codes_dir / "codes.npy")
            write_json(out.meta, codes_dir / "meta.json")
            if "centroids" in out.state:  # RPG's digit_init codebook
                write_npy(out.state["centroids"].numpy(), codes_dir / "centroids.npy")
        buffer = io.BytesIO()  # torch.save to a path records that (random, temporary) name in the archive
        torch.save(out.state, buffer)
        with atomic_path(args.state_dir / "model.pt") as tmp:
            tmp.write_bytes(buffer.getvalue())
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        write_json({**out.facts, "peak_memory_mb": round(peak, 1)}, args.metrics)
        write_csv(code_usage(out.codes, cfg.levels), plots / "code_usage.csv")

if __name__ == "__main__":
    main()
