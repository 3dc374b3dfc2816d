"""Stages `train_sasrec` / `train_gpt2`: train one item-representation variant, write its top-K lists.

The params section is the backbone's name (`sasrec` or `gpt2`); the variant comes from
the command line (dvc.yaml's matrix), so adding a variant is a params change.
"""
import argparse
import resource
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from _common import load_section, setup_logging
from lib.io import atomic_path, read_json, write_json, write_parquet
from lib.models.config import SeqRecConfig
from lib.models.recommend import recommend
from lib.models.training import accelerator, fit, refit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--backbone", choices=["sasrec", "gpt2"], required=True)
    p.add_argument("--representation", choices=["id", "content_init", "content", "content_plus_id"], required=True)
    for flag in ("split-dir", "items", "embeddings", "model-dir", "recs-dir", "metrics", "plots-dir"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    cfg = load_section(args.params, args.backbone, SeqRecConfig)
    setup_logging()
    name = f"{args.backbone}_{args.representation}"

    retrain = read_json(args.split_dir / "split.json").get("retrain_on_validation", False)
    train = pd.read_parquet(args.split_dir / "train.parquet")
    val = pd.read_parquet(args.split_dir / "val.parquet")
    test = pd.read_parquet(args.split_dir / "test.parquet")
    n_items = len(pd.read_parquet(args.items, columns=["item"]))
    content = None if args.representation == "id" else np.load(args.embeddings)

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    best, facts = fit(args.backbone, args.representation, cfg, train, val, n_items, content,
                      str(ckpt_tmp), logger=logger)
    if retrain:  # final model: same recipe on train + validation period, epochs chosen on validation
        best = refit(args.backbone, args.representation, cfg, pd.read_parquet(args.split_dir / "train_full.parquet"),
                     n_items, content, facts["best_epoch"])
        best.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
        facts["retrained_on_validation_epochs"] = facts["best_epoch"]
    device = "cuda" if accelerator(cfg.train.device) == "gpu" else "cpu"
    for split_name, rows in (("val", val), ("test", test)):
        write_parquet(recommend(best.model, rows, cfg.top_k, device=device), args.recs_dir / f"{split_name}.parquet")
    args.model_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.model_dir / "model.ckpt") as tmp:
        shutil.copyfile(ckpt_tmp / "best.ckpt", tmp)
    shutil.rmtree(ckpt_tmp, ignore_errors=True)
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    write_json({"model": name, **facts, "peak_memory_mb": round(peak, 1)}, args.metrics)


if __name__ == "__main__":
    main()
