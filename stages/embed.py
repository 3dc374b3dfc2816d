"""Stage `embed@<name>`: item table -> item text vectors in data/vectors/<name>, row i = item i, row 0 = zeros.

Params `vectors.embed.<name>`: the `embed` section with `set` overrides (another item text template or
encoder; lib/vectors.py). meta.json names the vectors and says `protocol: null`: item text sees no
interactions, so any protocol's tokenizer or run may read them.
"""
import pandas as pd
import torch

from _common import ROOT, checked, setup_logging, stage_args
from lib.config import load_table_entry
from lib.embed import EmbedConfig, check_items, embed_items, encoder_source, load_encoder, pin_threads
from lib.io import write_json, write_npy
from lib.vectors import EmbedVectorsSpec

# A fixed torch thread count, always: CPU kernels may split their reductions by thread, so another count
# can change the vectors' last bits (and every stage after this one). A constant, not a param: the count is
# part of what makes the numbers, not a knob to tune per machine. With the pinned instruction set of the
# stage's cmd (dvc.yaml), 1 and 2 threads gave the same bytes on this study's machine; on CUDA it only pins
# the host-side work.
TORCH_THREADS = 2


def _name_flag(p) -> None:
    p.add_argument("--name", required=True, help="a key of params `vectors.embed`")


def main(argv=None) -> None:
    args = stage_args(__doc__, {
        "items": "item table parquet (row i-1 = item i)",
        "out-dir": "output directory: embeddings.npy (N+1, dim) and meta.json",
        "metrics": "output: metrics JSON",
    }, extra=_name_flag, argv=argv)
    _, cfg = checked(args.params, lambda prm: load_table_entry(prm, "vectors.embed", args.name, "embed", EmbedConfig,
                                                                EmbedVectorsSpec))
    setup_logging()
    pin_threads(TORCH_THREADS)
    torch.manual_seed(0)  # inference only; seeded so any stochastic module is reproducible too
    items = pd.read_parquet(args.items)
    try:
        check_items(items)  # fail before the model loads
        encode, info = load_encoder(cfg)
        emb, stats = embed_items(items, cfg, encode)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    write_npy(emb, args.out_dir / "embeddings.npy")
    # The encoder's identity travels with the vectors: consumers read this, not params.yaml. Nothing
    # machine-specific (no absolute path): tokenizers depend on this file.
    write_json({
        "name": args.name, "protocol": None, "model": info["model"],
        "source": encoder_source(info["model"], info["path"], ROOT),
        "dim": stats["dim"], "max_seq_length": info["max_seq_length"], "template": cfg.template,
        "n_items": stats["items"], "items_with_fallback": stats["items_with_fallback"],
        "normalize": cfg.normalize, "round_decimals": stats["round_decimals"], "precision": cfg.precision,
        "rows": "row i = item id i; row 0 = padding (zeros)",
    }, args.out_dir / "meta.json")
    write_json({"name": args.name, **stats, "torch_threads": TORCH_THREADS}, args.metrics)


if __name__ == "__main__":
    main()
