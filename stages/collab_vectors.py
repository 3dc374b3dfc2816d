"""Stage `collab_vectors@<name>`: content embeddings + a trained ranker's item rows -> collaborative vectors.

Params `vectors.collab.<name>` (lib/collab.py): the content vectors, the run whose checkpoint holds the
learned rows and how the two parts are weighed. Warm items (an interaction in the data the run was fit on:
train.parquet, or train_full.parquet under a refit protocol, whose model.ckpt is the refit one) keep their learned row;
the others get a ridge prediction from their content. Writes embeddings.npy in the embed stage's
contract (lib/vectors.py), so a tokenizer reads it like any item vectors.
"""
import numpy as np
import pandas as pd
import torch

from _common import checked, setup_logging, stage_args
from lib.cold import untrained
from lib.collab import CollabVectorsConfig, check_run, collab_vectors, item_rows, load_entry
from lib.data.split import fit_name
from lib.io import read_json, write_json, write_npy
from lib.tokenizers.codes import check_embeddings
from lib.vectors import check_vectors_meta


def _name_flag(p) -> None:
    p.add_argument("--name", required=True, help="a key of params `vectors.collab`")


def main(argv=None) -> None:
    args = stage_args(__doc__, {
        "embeddings": "item content embeddings .npy (N+1, dim), row 0 = padding",
        "embed-meta": "the embeddings' meta.json (encoder name, dim, n_items)",
        "model-dir": "the run's model directory: model.ckpt (a ranker checkpoint)",
        "run-info": "the run's run.json (name, protocol)",
        "split-dir": "the run's split: train.parquet (train_full.parquet under refit) gives the warm items",
        "out-dir": "output directory: embeddings.npy (N+1, dim + d), collab.npy (N+1, d), meta.json",
        "metrics": "output: metrics JSON (regressor quality, warm/cold counts)",
    }, extra=_name_flag, argv=argv)
    cfg = checked(args.params, lambda prm: load_entry(prm, "vectors.collab", args.name, CollabVectorsConfig))
    setup_logging()
    try:
        emb_meta = read_json(args.embed_meta)
        check_vectors_meta(emb_meta, cfg.vectors, cfg.protocol, args.embed_meta)
        content = np.load(args.embeddings)
        n_items = emb_meta["n_items"]
        check_embeddings(content, n_items, emb_meta.get("dim"))
        run = read_json(args.run_info)
        check_run(run, cfg)
        learned = item_rows(torch.load(args.model_dir / "model.ckpt", map_location="cpu", weights_only=False))
        # the run's final model (whose rows these are) was fit on the test lists' data (lib/data/split.py)
        fit_file = args.split_dir / f"{fit_name(read_json(args.split_dir / 'split.json'), 'test')}.parquet"
        warm = ~untrained(n_items, pd.read_parquet(fit_file, columns=["item"])["item"].to_numpy())
        warm[0] = False
        vectors, collab, facts = collab_vectors(content.astype(np.float64), learned, warm, cfg)
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"error: {e}") from None

    predicted = facts.pop("predicted_items")
    write_npy(vectors, args.out_dir / "embeddings.npy")
    write_npy(collab, args.out_dir / "collab.npy")
    write_json({
        "name": args.name, "vectors": cfg.vectors, "model": f"{emb_meta.get('model')}+collab:{cfg.run}",
        "source": emb_meta.get("source"),
        "run": cfg.run, "representation": run.get("representation"), "protocol": cfg.protocol,
        "dim": int(vectors.shape[1]), "content_dim": facts["content_dim"], "collab_dim": facts["collab_dim"],
        "weight": cfg.weight, "ridge_alpha": cfg.ridge_alpha, "n_items": n_items,
        "layout": "[L2-normalised content (content_dim) ; weight * L2-normalised collaborative row (collab_dim)]",
        "collab_rows": "warm items: the run's learned row; predicted_items: ridge prediction from content",
        "predicted_items": predicted, "rows": "row i = item id i; row 0 = padding (zeros)",
    }, args.out_dir / "meta.json")
    write_json({"name": args.name, "run": cfg.run, "protocol": cfg.protocol, "fit_file": fit_file.name,
                "ridge_alpha": cfg.ridge_alpha, "weight": cfg.weight, **facts}, args.metrics)


if __name__ == "__main__":
    main()
