"""Benchmark: training seconds per epoch, inference users/second and peak memory per backbone.

Runs on the real split produced by `dvc repro split` (data/split) with the params of
params.yaml, one subprocess per backbone so that peak RSS is measured per model:

    python benchmarks/bench_seqrec.py [--epochs 2] [--backbones sasrec,gpt2]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_one(backbone: str, epochs: int, representation: str, sets: list[str], batches: int = 0) -> dict:
    import numpy as np
    import pandas as pd
    import torch
    import yaml
    from torch.utils.data import DataLoader

    from lib.config import apply_overrides, from_dict
    from lib.models.config import SeqRecConfig
    from lib.models.data import LengthBucketSampler, NextItemDataset, training_sequences, training_targets
    from lib.models.item_repr import CODE_KINDS, CONTENT_KINDS, ItemFeatures
    from lib.models.recommend import recommend
    from lib.models.seqrec import SeqRec
    from lib.runs import RunSpec, run_section  # the run's config as the training stage merges it
    section = run_section(yaml.safe_load((ROOT / "params.yaml").read_text()), "rankers",
                          RunSpec(backbone=backbone, protocol="gts"))
    overrides = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in sets)}
    section = apply_overrides(section, overrides, "--set", SeqRecConfig)
    torch.set_num_threads(section["train"].get("threads") or torch.get_num_threads())
    cfg = from_dict(SeqRecConfig, section, backbone)
    split = ROOT / "data/split/gts"
    train = pd.read_parquet(split / "train.parquet")
    test = pd.read_parquet(split / "test.parquet")
    n_items = len(pd.read_parquet(ROOT / "data/processed/items.parquet", columns=["item"]))
    features = ItemFeatures(
        content=np.load(ROOT / "data/vectors/minilm/embeddings.npy") if representation in CONTENT_KINDS else None,
        codes=np.load(ROOT / "codes/rqvae/codes.npy").astype(np.int64)[:, :-1] if representation in CODE_KINDS
        else None)
    torch.manual_seed(0)
    model = SeqRec(backbone, representation, n_items, cfg.model, features)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    seqs = training_sequences(train, cfg.model.max_len)
    model.set_target_counts(training_targets(seqs))  # loss mixed: as lib/models/training.py
    loader = DataLoader(NextItemDataset(seqs), collate_fn=NextItemDataset.collate,
                        batch_sampler=LengthBucketSampler([len(s) for s in seqs], cfg.train.batch_size,
                                                           pool=cfg.train.length_pool))
    per_epoch = []
    for _ in range(epochs):
        model.train()
        t = time.perf_counter()
        for b, (inp, tgt) in enumerate(loader):
            if batches and b == batches:
                break
            opt.zero_grad()
            model.loss(inp, tgt, cfg.train.loss, cfg.train.ce_chunk, cfg.train.negatives,
                       cfg.train.ce_dtype).backward()
            opt.step()
        seconds = time.perf_counter() - t
        per_epoch.append(seconds * len(loader) / batches if batches else seconds)
    t = time.perf_counter()
    recommend(model, test, cfg.top_k, progress=False)
    infer = time.perf_counter() - t
    return {"backbone": backbone, "representation": representation, "set": sets,
            "train_seconds_per_epoch": round(min(per_epoch), 2),
            "inference_users_per_second": round(len(test) / infer, 1), "test_users": len(test),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--backbones", default="sasrec,gpt2")
    p.add_argument("--representation", default="id")
    p.add_argument("--batches", type=int, default=0, help="time only this many batches of an epoch and project "
                                                          "the epoch from them (0 = whole epochs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the backbone's params section, e.g. train.loss=sampled (repeatable)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.epochs, args.representation, args.set, args.batches)))
        return
    for b in args.backbones.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", b, "--epochs", str(args.epochs),
                              "--representation", args.representation, "--batches", str(args.batches)]
                             + [f"--set={x}" for x in args.set],
                             check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
