"""Stage `train_generators@<run>`: GPT-2 generating Semantic IDs (TIGER-style), then top-K lists by beam search.

The run is params `runs.generators.<run>` (lib/runs.py): section `gpt2_sid` with the run's `set`
overrides; its tokenizer's codes come in through --codes-dir.
"""
import time

import numpy as np
import pandas as pd

from _codes import load_codes
from _common import checked, setup_logging, stage_args
from lib.cold import cold_pools
from lib.io import read_json, write_json, write_parquet
from lib.runs import load_run, run_info
from lib.sid.config import GPT2SidConfig
from lib.sid.recommend import invalid_rate, prefix_hit_rates, recommend
from lib.sid.training import fit, refit
from lib.sid.vocab import SidVocab
from lib.trainer import peak_memory_mb, publish_checkpoint, torch_device


def main() -> None:
    args = stage_args(__doc__, {
        "split-dir": "train/val/test parquet files of the split stage",
        "codes-dir": "tokenizer output: codes.npy (N+1, C) and meta.json",
        "model-dir": "output: model.ckpt (weights + config)",
        "recs-dir": "output: val.parquet and test.parquet top-K lists",
        "metrics": "output: training facts and Semantic-ID metrics JSON",
        "plots-dir": "output: dvclive training curves",
        "run-info": "output: run.json (what the evaluator and the report know of the run)",
    }, extra=lambda p: p.add_argument("--run", required=True, help="a key of params runs.generators"))
    spec, cfg = checked(args.params, lambda prm: load_run(prm, "generators", args.run, GPT2SidConfig))
    setup_logging()
    vocab, meta = load_codes(args.codes_dir, spec.protocol,
                             lambda codes, meta: SidVocab.from_meta(codes, meta, cfg.model.user_buckets))
    train, train_full, val, test = (pd.read_parquet(args.split_dir / f"{s}.parquet")
                                    for s in ("train", "train_full", "val", "test"))
    refit_final = read_json(args.split_dir / "split.json").get("retrain_on_validation", False)

    def rule_items(fit_data: pd.DataFrame) -> np.ndarray:
        """The cold-start rule's candidates: decode.cold_pool of the items `fit_data` lacks (lib/cold.py)."""
        pools = cold_pools(vocab.n_items, fit_data["item"].unique(), [cfg.decode.cold_pool],
                           known_items=train_full["item"].unique())
        return np.flatnonzero(pools[cfg.decode.cold_pool])

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    module, facts = fit(cfg, vocab, meta, train, val, str(ckpt_tmp), logger=logger, cold=rule_items(train))
    device = torch_device(cfg.train.device)
    final = module  # validation lists always come from the model chosen on validation
    if refit_final:  # test lists from a refit on train + validation period for the chosen epoch count
        t0 = time.perf_counter()
        final = refit(cfg, vocab, meta, train_full, facts["best_epoch"], cold=rule_items(train_full))
        final.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
        facts |= {"retrained_on_validation_epochs": facts["best_epoch"],
                  "refit_seconds": round(time.perf_counter() - t0, 1)}
    for name, rows, m in (("val", val, module), ("test", test, final)):
        t0 = time.perf_counter()
        recs, codes = recommend(m.model, vocab, m.trie, rows, cfg, device=device, cold_items=m.cold_items)
        seconds = time.perf_counter() - t0
        write_parquet(recs, args.recs_dir / f"{name}.parquet")
        facts[f"{name}/decode_seconds"] = round(seconds, 1)
        facts[f"{name}/users_per_second"] = round(len(rows) / seconds, 1)
        facts[f"{name}/invalid_id_rate"] = invalid_rate(codes, vocab)
        facts[f"{name}/short_lists"] = int(sum(len(i) < cfg.top_k for i in recs["items"]))
        hits = prefix_hit_rates(list(recs["items"]), rows["target"].to_numpy(np.int64), vocab)
        facts.update({f"{name}/{k}": v for k, v in hits.items()})
    publish_checkpoint(ckpt_tmp, args.model_dir)
    write_json({"model": args.run, "tokenizer": spec.tokenizer, "method": meta.get("method", "?"),
                "n_levels": vocab.n_levels, "vocab_size": vocab.vocab_size, **facts,
                "peak_memory_mb": peak_memory_mb(device)}, args.metrics)
    write_json(run_info(args.run, "generators", spec, cfg.train.seed, vocab.n_levels), args.run_info)


if __name__ == "__main__":
    main()
