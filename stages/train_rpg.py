"""Stage `train_parallel_generators@<run>`: RPG over a tokenizer's long parallel codes, then exact top-K lists.

The run is params `runs.parallel_generators.<run>` (lib/runs.py): section `rpg` with the run's `set`
overrides. Every item of a list's catalogue (the split's catalogue.parquet: items known at its cut-off)
is scored through its digits (cold items too; no cold-start rule), and the lists hold top_k + the
user's seen items, filtered by the evaluator like every ranker's. With model.digit_init codebook the
digit embeddings start as the tokenizer's centroids (its model.pt).
"""
import time

import numpy as np
import pandas as pd
import torch

from _catalogue import load_catalogue
from _codes import content_levels, load_codes
from _common import checked, setup_logging, stage_args
from lib.catalogue import list_mask
from lib.io import read_json, write_json, write_parquet
from lib.models.recommend import recommend
from lib.rpg.config import RPGConfig
from lib.rpg.training import autocast, fit, refit
from lib.runs import load_run, run_info
from lib.trainer import peak_memory_mb, publish_checkpoint, torch_device


def digits_and_codebook(codes: np.ndarray, meta: dict) -> tuple[np.ndarray, int]:
    """(N+1, levels) content digits (the collision level is not one) and the largest of their codebook sizes."""
    return content_levels(codes, meta), int(max(meta["codebook_sizes"][: int(meta["levels"])]))


def tokenizer_centroids(codes_dir) -> np.ndarray:
    """(m, K, d_sub) centroids of a pq/opq tokenizer's model.pt, or a clear exit."""
    path = codes_dir / "model.pt"
    if not path.is_file():
        raise SystemExit(f"error: model.digit_init codebook needs the tokenizer state, not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if "centroids" not in state:
        raise SystemExit(f"error: model.digit_init codebook needs a pq/opq tokenizer; {path} has no centroids")
    return state["centroids"].numpy()


def main() -> None:
    args = stage_args(__doc__, {
        "split-dir": "train/val/test parquet files, catalogue.parquet and split.json of the split stage",
        "codes-dir": "tokenizer output: codes.npy (N+1, digits [+ collision level]) and meta.json",
        "model-dir": "output: model.ckpt (weights + config + codes)",
        "recs-dir": "output: val.parquet and test.parquet top-K lists",
        "metrics": "output: training facts JSON",
        "plots-dir": "output: dvclive training curves",
        "run-info": "output: run.json (what the evaluator and the report know of the run)",
    }, extra=lambda p: p.add_argument("--run", required=True, help="a key of params runs.parallel_generators"))
    spec, cfg = checked(args.params, lambda prm: load_run(prm, "parallel_generators", args.run, RPGConfig))
    setup_logging()
    (digits, codebook_size), meta = load_codes(args.codes_dir, spec.protocol, digits_and_codebook)
    levels = int(meta["levels"])
    cat = load_catalogue(args.split_dir, len(digits) - 1)
    candidates = {s: list_mask(cat, s) for s in ("val", "test")}  # each list's catalogue
    train, train_full, val, test = (pd.read_parquet(args.split_dir / f"{s}.parquet")
                                    for s in ("train", "train_full", "val", "test"))
    refit_final = read_json(args.split_dir / "split.json").get("retrain_on_validation", False)
    centroids = tokenizer_centroids(args.codes_dir) if cfg.model.digit_init == "codebook" else None

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    try:
        module, facts = fit(cfg, digits, codebook_size, train, val, str(ckpt_tmp), logger=logger, centroids=centroids,
                            val_candidates=candidates["val"])
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    final = module  # validation lists always come from the model chosen on validation
    if refit_final:  # test lists from a refit on train + validation period for the chosen epoch count
        t0 = time.perf_counter()
        final = refit(cfg, digits, codebook_size, train_full, facts["best_epoch"], centroids=centroids)
        final.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
        facts |= {"retrained_on_validation_epochs": facts["best_epoch"],
                  "refit_seconds": round(time.perf_counter() - t0, 1)}
    device = torch_device(cfg.train.device)
    for name, rows, m in (("val", val, module), ("test", test, final)):
        t0 = time.perf_counter()
        with autocast(cfg.train, device):
            recs = recommend(m.model, rows, cfg.top_k, device=device, candidates=candidates[name])
        seconds = time.perf_counter() - t0
        write_parquet(recs, args.recs_dir / f"{name}.parquet")
        facts |= {f"{name}/catalogue_items": int(candidates[name].sum()), f"{name}/score_seconds": round(seconds, 2),
                  f"{name}/users_per_second": round(len(rows) / seconds, 1)}
    publish_checkpoint(ckpt_tmp, args.model_dir)
    full_id = np.unique(digits[1:], axis=0, return_counts=True)[1]
    write_json({"model": args.run, "tokenizer": spec.tokenizer, "method": meta.get("method", "?"), "digits": levels,
                "codebook_size": codebook_size, "items_sharing_all_digits": int(full_id[full_id > 1].sum()), **facts,
                "peak_memory_mb": peak_memory_mb(device)}, args.metrics)
    write_json(run_info(args.run, "parallel_generators", spec, cfg.train.seed, levels), args.run_info)


if __name__ == "__main__":
    main()
