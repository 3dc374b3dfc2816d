"""Stage `train_generators@<run>`: GPT-2 generating Semantic IDs (TIGER-style), then top-K lists by beam search.

The run is params `runs.generators.<run>` (lib/runs.py): section `gpt2_sid` with the run's `set`
overrides; its tokenizer's codes come in through --codes-dir. The split's catalogue.parquet
(lib/catalogue.py) gives the training trie (items known at the training cut-off) and each list's trie
(items known at its cut-off). TIGER's cold-start rule (decode.cold_every > 0) draws from each list's
knowable cold pool and is recorded in run.json `rules`.
"""
import time

import numpy as np
import pandas as pd

from _catalogue import load_catalogue
from _codes import load_codes
from _common import checked, setup_logging, stage_args
from lib.catalogue import list_mask, training_mask
from lib.cold import knowable_pool
from lib.io import read_json, write_json, write_parquet
from lib.runs import load_run, run_info
from lib.sid.config import GPT2SidConfig
from lib.sid.recommend import invalid_rate, prefix_hit_rates, recommend
from lib.sid.training import fit, refit
from lib.sid.trie import SidTrie
from lib.sid.vocab import SidVocab
from lib.trainer import peak_memory_mb, publish_checkpoint, torch_device


def main() -> None:
    args = stage_args(__doc__, {
        "split-dir": "train/val/test parquet files, catalogue.parquet and split.json of the split stage",
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
    cat = load_catalogue(args.split_dir, vocab.n_items)
    train, train_full, val, test = (pd.read_parquet(args.split_dir / f"{s}.parquet")
                                    for s in ("train", "train_full", "val", "test"))
    refit_final = read_json(args.split_dir / "split.json").get("retrain_on_validation", False)
    candidates = {s: list_mask(cat, s) for s in ("val", "test")}  # each list's catalogue
    fit_items = {"val": train["item"].unique(), "test": (train_full if refit_final else train)["item"].unique()}
    rules = ["tiger_cold_start"] if cfg.decode.cold_every else []
    # the rule's candidates: each list's knowable cold pool, catalogue items the list's model never trained on
    cold = {s: knowable_pool(candidates[s], fit_items[s]) for s in candidates}

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    try:
        module, facts = fit(cfg, vocab, meta, train, val, str(ckpt_tmp), logger=logger, cold=cold["val"],
                            catalogue=training_mask(cat, refit=False), val_candidates=candidates["val"])
    except ValueError as e:  # training items outside the catalogue
        raise SystemExit(f"error: {e}") from None
    device = torch_device(cfg.train.device)
    final = module  # validation lists always come from the model chosen on validation
    if refit_final:  # test lists from a refit on train + validation period for the chosen epoch count
        t0 = time.perf_counter()
        final = refit(cfg, vocab, meta, train_full, facts["best_epoch"], catalogue=training_mask(cat, refit=True))
        final.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
        facts |= {"retrained_on_validation_epochs": facts["best_epoch"],
                  "refit_seconds": round(time.perf_counter() - t0, 1)}
    for name, rows, m in (("val", val, module), ("test", test, final)):
        t0 = time.perf_counter()
        trie = SidTrie(vocab.codes, vocab.sizes, candidates[name])  # only items known at the list's cut-off
        recs, codes = recommend(m.model, vocab, trie, rows, cfg, device=device, cold_items=cold[name])
        seconds = time.perf_counter() - t0
        write_parquet(recs, args.recs_dir / f"{name}.parquet")
        facts[f"{name}/catalogue_items"] = int(candidates[name].sum())
        facts[f"{name}/decode_seconds"] = round(seconds, 1)
        facts[f"{name}/users_per_second"] = round(len(rows) / seconds, 1)
        facts[f"{name}/invalid_id_rate"] = invalid_rate(codes, vocab, candidates[name])
        facts[f"{name}/short_lists"] = int(sum(len(i) < cfg.top_k for i in recs["items"]))
        hits = prefix_hit_rates(list(recs["items"]), rows["target"].to_numpy(np.int64), vocab)
        facts.update({f"{name}/{k}": v for k, v in hits.items()})
    publish_checkpoint(ckpt_tmp, args.model_dir)
    write_json({"model": args.run, "tokenizer": spec.tokenizer, "method": meta.get("method", "?"),
                "n_levels": vocab.n_levels, "vocab_size": vocab.vocab_size, **facts,
                "peak_memory_mb": peak_memory_mb(device)}, args.metrics)
    write_json(run_info(args.run, "generators", spec, cfg.train.seed, vocab.n_levels, rules=rules), args.run_info)


if __name__ == "__main__":
    main()
