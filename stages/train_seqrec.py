"""Stages `train_sasrec` / `train_gpt2` (and `*_codes`): train one item-representation variant, write its top-K lists.

The params section is the backbone's name (`sasrec` or `gpt2`); the variant comes from
the command line (dvc.yaml's matrix), so adding a variant is a params change. Content variants
read --embeddings, Semantic-ID variants read --codes (the tokenizer's codes.npy + meta.json).
"""
import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from _common import load_section, setup_logging
from lib.io import read_json, write_json, write_parquet
from lib.models.config import Representation, SeqRecConfig
from lib.models.item_repr import CODE_KINDS, CONTENT_KINDS, FUSION_KINDS, ItemFeatures
from lib.models.recommend import recommend
from lib.models.training import fit, refit
from lib.trainer import peak_memory_mb, publish_checkpoint, torch_device


def semantic_codes(codes_dir: Path) -> np.ndarray:
    """(N+1, levels) semantic codes from a tokenizer's output; the collision level is left out."""
    path = codes_dir / "codes.npy"
    if not path.is_file():
        raise SystemExit(f"error: codes file not found: {path}")
    return np.load(path)[:, :read_json(codes_dir / "meta.json")["levels"]]


def warm_items(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """(N+1,) bool: the item has an interaction in `train` (the model's training data)."""
    warm = np.zeros(n_items + 1, dtype=bool)
    warm[train["item"].to_numpy()] = True
    return warm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backbone", choices=["sasrec", "gpt2"], required=True)
    p.add_argument("--representation", choices=list(Representation.__args__), required=True)
    for flag in ("split-dir", "items", "model-dir", "recs-dir", "metrics", "plots-dir"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    p.add_argument("--embeddings", type=Path, help="content embeddings .npy (content variants)")
    p.add_argument("--codes", type=Path, help="tokenizer output directory: codes.npy + meta.json (sid variants)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    cfg = load_section(args.params, args.backbone, SeqRecConfig)
    setup_logging()
    name = f"{args.backbone}_{args.representation}"
    for flag, kinds in (("embeddings", CONTENT_KINDS), ("codes", CODE_KINDS)):
        if args.representation in kinds and getattr(args, flag) is None:
            p.error(f"representation {args.representation} needs --{flag}")

    retrain = read_json(args.split_dir / "split.json").get("retrain_on_validation", False)
    train = pd.read_parquet(args.split_dir / "train.parquet")
    val = pd.read_parquet(args.split_dir / "val.parquet")
    test = pd.read_parquet(args.split_dir / "test.parquet")
    n_items = len(pd.read_parquet(args.items, columns=["item"]))
    features = ItemFeatures(
        content=np.load(args.embeddings) if args.representation in CONTENT_KINDS else None,
        codes=semantic_codes(args.codes) if args.representation in CODE_KINDS else None,
        warm=warm_items(train, n_items))

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    best, facts = fit(args.backbone, args.representation, cfg, train, val, n_items, features,
                      str(ckpt_tmp), logger=logger)
    if retrain:  # final model: same recipe on train + validation period, epochs chosen on validation
        train = pd.read_parquet(args.split_dir / "train_full.parquet")
        features = dataclasses.replace(features, warm=warm_items(train, n_items))
        best = refit(args.backbone, args.representation, cfg, train, n_items, features, facts["best_epoch"])
        best.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
        facts["retrained_on_validation_epochs"] = facts["best_epoch"]
    device = torch_device(cfg.train.device)
    for split_name, rows in (("val", val), ("test", test)):
        write_parquet(recommend(best.model, rows, cfg.top_k, device=device), args.recs_dir / f"{split_name}.parquet")
    publish_checkpoint(ckpt_tmp, args.model_dir)
    zeroed = int((~features.warm[1:]).sum()) if args.representation in FUSION_KINDS and cfg.model.zero_cold_ids else 0
    write_json({"model": name, **facts, "zeroed_id_rows": zeroed, "peak_memory_mb": peak_memory_mb(device)},
               args.metrics)


if __name__ == "__main__":
    main()
