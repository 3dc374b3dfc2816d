"""Benchmark: does a fusion model reach cold targets once its cold ID rows are predicted from content?

A content + ID (or codes + ID) model holds the ID rows of items without a training interaction at zero
(`model.zero_cold_ids`), while every warm item's row adds to its score. This script takes one trained
fusion run, predicts each cold row with a ridge regressor from the item's content/code part to its ID
row, fit on the warm items only (lib/collab.py's `fit_ridge`, as for collaborative codes), and scores
validation and test with the cold rows at zero and imputed, through the evaluator every run uses.
Post hoc: training is untouched, so it needs no new run. Prints one JSON line per variant.

    python tools/cold_id_ridge.py --run sasrec_content_plus_id_drop50 [--protocol gts] [--alpha 1.0]

Measured 2026-12-02 (reports/NOTES.md): ridge R^2 0.018, no cold hit gained.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@torch.no_grad()
def impute_cold_ids(items, alpha: float, holdout: float = 0.1, seed: int = 0) -> dict:
    """Fill the cold ID rows of a fusion ItemRepresentation (eval mode) in place: ridge(shared part -> ID row)
    fit on the warm rows (id_mask = 1); the cold rows' mask is set to 1. Returns the regressor's facts."""
    from lib.collab import fit_ridge, heldout_quality
    if items.table is None or items.id_mask is None:
        raise ValueError("not a fusion representation with warm flags (model.zero_cold_ids): no cold ID row")
    table, mask = items.table.weight, items.id_mask
    shared = (items() - table * mask).double().numpy()  # the content/code part (eval mode: no ID dropout)
    warm = mask[:, 0].numpy() > 0
    warm[0] = False
    cold = ~warm
    cold[0] = False
    y = table.double().numpy()
    facts = heldout_quality(shared[warm], y[warm], alpha, holdout, seed)
    idx = torch.as_tensor(np.flatnonzero(cold))
    table[idx] = torch.as_tensor(fit_ridge(shared[warm], y[warm], alpha).predict(shared[cold]), dtype=table.dtype)
    mask[idx] = 1.0
    return {"imputed_rows": int(cold.sum()), **facts}


def main() -> None:
    import pandas as pd
    import yaml

    from lib import catalogue
    from lib.cold import cold_pools
    from lib.config import from_dict
    from lib.evaluate import EvaluateConfig, evaluate_run
    from lib.io import read_json
    from lib.models.item_repr import ItemFeatures
    from lib.models.recommend import recommend
    from lib.models.training import SeqRecModule

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a trained fusion run: data/models/<run>/model.ckpt")
    p.add_argument("--protocol", default="gts")
    p.add_argument("--alpha", type=float, default=1.0, help="ridge penalty")
    p.add_argument("--embeddings", type=Path, default=ROOT / "data/vectors/minilm/embeddings.npy")
    args = p.parse_args()
    torch.set_num_threads(1)
    split = ROOT / "data/split" / args.protocol
    info = read_json(split / "split.json")
    fit_rows = pd.read_parquet(split / ("train_full.parquet" if info.get("retrain_on_validation") else "train.parquet"))
    items = pd.read_parquet(ROOT / "data/processed/items.parquet", columns=["item"])
    warm = np.zeros(len(items) + 1, bool)
    warm[fit_rows["item"].to_numpy()] = True
    cfg = from_dict(EvaluateConfig, yaml.safe_load((ROOT / "params.yaml").read_text())["evaluate"], "evaluate")
    table = catalogue.check(pd.read_parquet(split / "catalogue.parquet"), len(items))
    lists = {s: catalogue.list_mask(table, s) for s in ("val", "test")}
    train_items = pd.read_parquet(split / "train.parquet", columns=["item"])["item"].unique()
    pools = cold_pools(cfg.cold_pools, lists, {"val": train_items, "test": fit_rows["item"].unique()})
    module = SeqRecModule.load_from_checkpoint(ROOT / "data/models" / args.run / "model.ckpt", map_location="cpu",
                                               features=ItemFeatures(content=np.load(args.embeddings), warm=warm))
    model = module.model.eval()
    truth = {s: pd.read_parquet(split / f"{s}.parquet") for s in ("val", "test")}
    facts = {}
    for variant in ("zero", "ridge"):
        if variant == "ridge":
            facts = impute_cold_ids(model.items, args.alpha)
        recs = {s: recommend(model, rows, module.hparams.top_k, progress=False, candidates=lists[s])
                for s, rows in truth.items()}
        ev = evaluate_run(truth, recs, items, cfg, label=f"{args.run}/{variant}", pools=pools, catalogues=lists)
        keys = ("val/ndcg@10", "test/ndcg@10", "test/hr@10", "test/warm_target/ndcg@10", "test/cold_target/hr@10",
                "test/cold_pool/knowable/cold_slots@10")
        print(json.dumps({"run": args.run, "cold_rows": variant, **{k: ev.metrics.get(k) for k in keys}, **facts}))


if __name__ == "__main__":
    main()
