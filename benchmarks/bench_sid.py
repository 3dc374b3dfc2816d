"""Benchmark: GPT-2 Semantic-ID training seconds per epoch and constrained beam-search speed.

Runs on the real split (data/split) and tokenizer output (data/rqvae) with the `gpt2_sid`
params of params.yaml. Decoding cost does not depend on the weights, so an untrained model
gives the same timing as a trained one; pass --checkpoint to time (and sanity-check) a
trained model instead:

    python benchmarks/bench_sid.py [--epochs 1] [--users 0] [--checkpoint data/models/gpt2_sid/model.ckpt]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=1, help="training epochs to time (0 = skip)")
    p.add_argument("--batches", type=int, default=0, help="time only this many batches of an epoch and project "
                                                          "the epoch from them (0 = whole epochs)")
    p.add_argument("--users", type=int, default=0, help="test users to decode (0 = all, -1 = none)")
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--precision", default=None, help="override gpt2_sid.train.precision (training and decoding)")
    p.add_argument("--codes-dir", type=Path, default=ROOT / "codes/rqvae")
    args = p.parse_args()

    import numpy as np
    import pandas as pd
    import torch
    import yaml
    from torch.utils.data import DataLoader

    from lib.config import from_dict
    from lib.io import read_json
    from lib.models.data import LengthBucketSampler
    from lib.runs import RunSpec, run_section  # the run's config as the training stage merges it
    from lib.sid.config import GPT2SidConfig
    from lib.sid.data import SidSequenceDataset, user_sequences
    from lib.sid.recommend import autocast, invalid_rate, recommend
    from lib.sid.training import VOCAB_KEYS, SidModule
    from lib.sid.trie import SidTrie
    from lib.sid.vocab import SidVocab
    raw = run_section(yaml.safe_load((ROOT / "params.yaml").read_text()), "generators",
                      RunSpec(backbone="gpt2", protocol="gts"))
    if args.precision:
        raw["train"]["precision"] = args.precision
    cfg = from_dict(GPT2SidConfig, raw, "gpt2_sid")
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    meta = read_json(args.codes_dir / "meta.json")
    vocab = SidVocab.from_meta(np.load(args.codes_dir / "codes.npy").astype(np.int64), meta, cfg.model.user_buckets)
    trie = SidTrie(vocab.codes, vocab.sizes)
    split = ROOT / "data/split/gts"
    test = pd.read_parquet(split / "test.parquet")
    if args.users:
        test = test.iloc[: args.users]
    torch.manual_seed(0)
    if args.checkpoint:
        module = SidModule.load_from_checkpoint(str(args.checkpoint), map_location="cpu")
    else:
        module = SidModule({k: meta[k] for k in VOCAB_KEYS}, cfg.model.__dict__, cfg.train.__dict__,
                           cfg.decode.__dict__, cfg.top_k)
    model = module.model
    out = {"threads": torch.get_num_threads(), "precision": cfg.train.precision, "vocab_size": vocab.vocab_size,
           "n_levels": vocab.n_levels}
    if args.epochs:
        users, seqs = user_sequences(pd.read_parquet(split / "train.parquet"), cfg.model.max_len)
        ds = SidSequenceDataset(users, seqs, vocab, trie.node_of)
        sampler = LengthBucketSampler(ds.lengths(), cfg.train.batch_size, pool=cfg.train.length_pool)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        per_epoch = []
        for _ in range(args.epochs):
            model.train()
            t = time.perf_counter()
            for b, (inp, tgt, col, node) in enumerate(loader):
                if args.batches and b == args.batches:
                    break
                opt.zero_grad()
                with autocast(cfg, "cpu"):
                    loss = model.loss(inp, tgt, col, node, trie.children)
                loss.backward()
                opt.step()
            seconds = time.perf_counter() - t
            per_epoch.append(seconds * len(loader) / args.batches if args.batches else seconds)
        out["train_seconds_per_epoch"] = round(min(per_epoch), 1)
        out["timed_batches"] = args.batches or len(loader)
    if args.users < 0:
        print(json.dumps(out | {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)},
                         indent=2))
        return
    t = time.perf_counter()
    recs, codes = recommend(model, vocab, trie, test, cfg, progress=True)
    seconds = time.perf_counter() - t
    out.update({"decoded_users": len(test), "beam_width": cfg.decode.beam_width,
                "decode_batch_size": cfg.decode.batch_size, "decode_seconds": round(seconds, 1),
                "users_per_second": round(len(test) / seconds, 1), "invalid_id_rate": invalid_rate(codes, vocab),
                "min_list_length": int(min(len(i) for i in recs["items"])),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
