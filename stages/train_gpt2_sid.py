"""Stage `train_gpt2_sid`: GPT-2 generating the next item's Semantic ID; writes top-K lists and SID metrics.

Reads the vocabulary from the tokenizer's output (codes.npy + meta.json), never from params,
so `dvc exp run -S rqvae.levels=4` needs no change here.
"""
import time

import numpy as np
import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.io import read_json, write_json, write_parquet
from lib.sid.config import GPT2SidConfig
from lib.sid.recommend import invalid_rate, prefix_hit_rates, recommend
from lib.sid.training import fit
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
    })
    cfg = load_section(args.params, "gpt2_sid", GPT2SidConfig)
    setup_logging()
    meta = read_json(args.codes_dir / "meta.json")
    codes_path = args.codes_dir / "codes.npy"
    if not codes_path.is_file():
        raise SystemExit(f"error: codes file not found: {codes_path}")
    try:
        vocab = SidVocab.from_meta(np.load(codes_path), meta, cfg.model.user_buckets)
    except (KeyError, ValueError) as e:
        raise SystemExit(f"error: bad tokenizer output in {args.codes_dir}: {e}") from None
    train, val, test = (pd.read_parquet(args.split_dir / f"{s}.parquet") for s in ("train", "val", "test"))

    from dvclive.lightning import DVCLiveLogger  # only the stage logs; lib stays logger-agnostic
    logger = DVCLiveLogger(dir=str(args.plots_dir), dvcyaml=False, save_dvc_exp=False, report=None)
    ckpt_tmp = args.model_dir.parent / f".{args.model_dir.name}.ckpt_tmp"
    module, facts = fit(cfg, vocab, meta, train, val, str(ckpt_tmp), logger=logger)
    device = torch_device(cfg.train.device)
    for name, rows in (("val", val), ("test", test)):
        t0 = time.perf_counter()
        recs, codes = recommend(module.model, vocab, module.trie, rows, cfg, device=device,
                                cold_items=module.cold_items)
        seconds = time.perf_counter() - t0
        write_parquet(recs, args.recs_dir / f"{name}.parquet")
        facts[f"{name}/decode_seconds"] = round(seconds, 1)
        facts[f"{name}/users_per_second"] = round(len(rows) / seconds, 1)
        facts[f"{name}/invalid_id_rate"] = invalid_rate(codes, vocab)
        facts[f"{name}/short_lists"] = int(sum(len(i) < cfg.top_k for i in recs["items"]))
        hits = prefix_hit_rates(list(recs["items"]), rows["target"].to_numpy(np.int64), vocab)
        facts.update({f"{name}/{k}": v for k, v in hits.items()})
    publish_checkpoint(ckpt_tmp, args.model_dir)
    write_json({"model": args.model_dir.name, "tokenizer": meta.get("method", "?"), "n_levels": vocab.n_levels,
                "vocab_size": vocab.vocab_size, **facts, "peak_memory_mb": peak_memory_mb(device)}, args.metrics)


if __name__ == "__main__":
    main()
