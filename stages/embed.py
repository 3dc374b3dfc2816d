"""Stage `embed`: item table -> sentence embeddings, row i = item id i, row 0 = padding zeros."""
import pandas as pd
import torch

from _common import load_section, setup_logging, stage_args
from lib.embed import EmbedConfig, check_items, embed_items, load_encoder
from lib.io import write_json, write_npy


def main() -> None:
    args = stage_args(__doc__, {
        "items": "item table parquet (row i-1 = item i)",
        "out-dir": "output directory: embeddings.npy (N+1, dim) and meta.json",
        "metrics": "output: metrics JSON",
    })
    cfg = load_section(args.params, "embed", EmbedConfig)
    setup_logging()
    torch.manual_seed(0)  # inference only; seeded so any stochastic module is reproducible too
    items = pd.read_parquet(args.items)
    try:
        check_items(items)  # fail before the model loads
        encode, info = load_encoder(cfg)
        emb, stats = embed_items(items, cfg, encode)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    write_npy(emb, args.out_dir / "embeddings.npy")
    # The encoder's identity travels with the vectors: consumers read this, not params.yaml.
    write_json({
        "model": info["model"], "path": info["path"], "dim": stats["dim"],
        "max_seq_length": info["max_seq_length"], "template": cfg.template,
        "n_items": stats["items"], "items_with_fallback": stats["items_with_fallback"],
        "normalize": cfg.normalize, "rows": "row i = item id i; row 0 = padding (zeros)",
    }, args.out_dir / "meta.json")
    write_json(stats, args.metrics)


if __name__ == "__main__":
    main()
