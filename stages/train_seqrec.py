"""Stage `train_<family>@<run>` for the ranker families: train one SASRec / GPT-2 run, write its top-K lists.

The run is params `runs.<family>.<run>` (lib/runs.py): its backbone's section (`sasrec` or `gpt2`)
with the run's `set` overrides. Content runs read --embeddings, code runs read --codes (a tokenizer's
codes.npy + meta.json); ID runs read neither, so dvc.yaml gives them neither as a dependency.

Catalogue (lib/catalogue.py, the split's catalogue.parquet): the training objective's classes are the
items known at the training cut-off (T_val; T_test for a final refit); a list holds only items known at
its cut-off, and an ID-only model never recommends an item it has no trained row for (an untrained
random row would place it by chance).
"""
import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _codes import content_levels, load_codes
from _common import checked, setup_logging
from lib import catalogue
from lib.cold import knowable_pool
from lib.io import read_json, write_json, write_parquet
from lib.models.config import SeqRecConfig
from lib.models.item_repr import CODE_KINDS, CONTENT_KINDS, FUSION_KINDS, ItemFeatures
from lib.models.recommend import choose_cold_shift, recommend, shifter
from lib.models.training import fit, refit
from lib.runs import FAMILIES, load_run, run_info
from lib.trainer import peak_memory_mb, publish_checkpoint, torch_device


def warm_items(train: pd.DataFrame, n_items: int) -> np.ndarray:
    """(N+1,) bool: the item has an interaction in `train` (the model's training data)."""
    warm = np.zeros(n_items + 1, dtype=bool)
    warm[train["item"].to_numpy()] = True
    return warm


def candidates(table: pd.DataFrame, split: str, rep: str, warm: np.ndarray) -> np.ndarray:
    """(N+1,) bool: the items a `split` list may hold: known at its cut-off and, for an ID-only model,
    trained (its untrained rows are random: they would reach cold targets by chance alone)."""
    known = catalogue.list_mask(table, split)
    return known & warm if rep == "id" else known


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--family", choices=[f for f in FAMILIES if not f.endswith("generators")], required=True)
    p.add_argument("--run", required=True, help="a key of params runs.<family>")
    for flag in ("split-dir", "items", "model-dir", "recs-dir", "metrics", "plots-dir", "run-info"):
        p.add_argument(f"--{flag}", type=Path, required=True)
    p.add_argument("--embeddings", type=Path, help="content embeddings .npy (content runs)")
    p.add_argument("--codes", type=Path, help="tokenizer output directory: codes.npy + meta.json (code runs)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    spec, cfg = checked(args.params, lambda prm: load_run(prm, args.family, args.run, SeqRecConfig))
    setup_logging()
    rep = spec.representation
    for flag, kinds in (("embeddings", CONTENT_KINDS), ("codes", CODE_KINDS)):
        if rep in kinds and getattr(args, flag) is None:
            p.error(f"representation {rep} needs --{flag}")

    split_info = read_json(args.split_dir / "split.json")
    train = train_fit = pd.read_parquet(args.split_dir / "train.parquet")
    val = pd.read_parquet(args.split_dir / "val.parquet")
    test = pd.read_parquet(args.split_dir / "test.parquet")
    n_items = len(pd.read_parquet(args.items, columns=["item"]))
    cat_path = args.split_dir / "catalogue.parquet"
    if not cat_path.is_file():
        raise SystemExit(f"error: input not found: {cat_path}")
    try:
        table = catalogue.check(pd.read_parquet(cat_path), n_items, str(cat_path))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    codes = load_codes(args.codes, spec.protocol, content_levels)[0] if rep in CODE_KINDS else None
    features = ItemFeatures(content=np.load(args.embeddings) if rep in CONTENT_KINDS else None,
                            codes=codes, warm=warm_items(train, n_items),
                            known=catalogue.training_mask(table, refit=False))
    lists = {"val": candidates(table, "val", rep, features.warm)}

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    best, facts = fit(spec.backbone, rep, cfg, train, val, n_items, features, str(ckpt_tmp), logger=logger,
                      val_candidates=lists["val"])
    final = best  # validation lists always come from the model chosen on validation
    if split_info.get("retrain_on_validation", False):  # test lists: train + validation period, epochs from val
        train = pd.read_parquet(args.split_dir / "train_full.parquet")
        features = dataclasses.replace(features, warm=warm_items(train, n_items),
                                       known=catalogue.training_mask(table, refit=True))
        t0 = time.perf_counter()
        final = refit(spec.backbone, rep, cfg, train, n_items, features, facts["best_epoch"])
        final.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
        facts |= {"retrained_on_validation_epochs": facts["best_epoch"],
                  "refit_seconds": round(time.perf_counter() - t0, 1)}
    lists["test"] = candidates(table, "test", rep, features.warm)  # features: the refit's, if any
    device = torch_device(cfg.train.device)
    adjusts = {"val": None, "test": None}
    rules = []
    if cfg.cold_shift != (0.0,):  # a list rule (an analysis, never a leaderboard row): b chosen on validation
        rules.append("cold_shift")
        cold_val = knowable_pool(lists["val"], train_fit["item"].unique())
        cold_test = knowable_pool(lists["test"], train["item"].unique())  # train: the refit's, if any
        shift, by_shift = choose_cold_shift(best.model, val, cold_val, cfg.cold_shift, device=device,
                                            candidates=lists["val"])
        adjusts = {"val": shifter(cold_val, shift), "test": shifter(cold_test, shift)}
        facts |= {"cold_shift": shift, "cold_shift_val_ndcg@10": {f"{b:g}": round(v, 6) for b, v in by_shift.items()}}
    for split_name, rows, m in (("val", val, best), ("test", test, final)):
        write_parquet(recommend(m.model, rows, cfg.top_k, device=device, adjust=adjusts[split_name],
                                candidates=lists[split_name]), args.recs_dir / f"{split_name}.parquet")
    publish_checkpoint(ckpt_tmp, args.model_dir)
    zeroed = int((~features.warm[1:]).sum()) if rep in FUSION_KINDS and cfg.model.zero_cold_ids else 0
    write_json({"model": args.run, **facts, "zeroed_id_rows": zeroed, "peak_memory_mb": peak_memory_mb(device)},
               args.metrics)
    write_json(run_info(args.run, args.family, spec, cfg.train.seed,
                        None if codes is None else codes.shape[1], rules), args.run_info)


if __name__ == "__main__":
    main()
