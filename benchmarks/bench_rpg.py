"""Benchmark: RPG's training seconds per epoch, where they go, and exact-scoring users/second.

Runs on the real split (data/split/gts) and a tokenizer's long codes (default codes/opq) with
params.yaml's `rpg` section and `--config` overrides, one subprocess per configuration so that peak RSS is
per configuration. `--profile N` adds the top operators of N training batches (torch.profiler, CPU time).

    python benchmarks/bench_rpg.py [--epochs 1] [--codes codes/opq] \
        [--config "model.d_model=64 train.precision=32-true" ...] [--profile 20]

Each --config is one space-separated set of overrides (repeatable; none = the params as they are).
Speed only: the validation metric is not computed (the stage's early stopping decides the epochs).
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


def run_one(codes_dir: Path, epochs: int, sets: list[str], profile: int, batches: int = 0) -> dict:
    import pandas as pd
    import torch
    import yaml

    sys.path.insert(0, str(ROOT / "stages"))
    from train_rpg import digits_and_codebook, tokenizer_centroids

    from _codes import load_codes  # the stage helpers live beside the stages
    from lib.config import apply_overrides, from_dict
    from lib.models.recommend import recommend
    from lib.rpg.config import RPGConfig
    from lib.rpg.training import _module, autocast
    from lib.runs import RunSpec, run_section  # the run's config as the training stage merges it
    from lib.trainer import seed_and_pin
    section = run_section(yaml.safe_load((ROOT / "params.yaml").read_text()), "parallel_generators",
                          RunSpec(backbone="gpt2", protocol="gts"))
    overrides = {k: yaml.safe_load(v) for k, v in (x.split("=", 1) for x in sets)}
    cfg = from_dict(RPGConfig, apply_overrides(section, overrides, "--config", RPGConfig), "rpg")
    (digits, codebook_size), _ = load_codes(codes_dir, "gts", digits_and_codebook)
    split = ROOT / "data/split/gts"
    train, test = pd.read_parquet(split / "train.parquet"), pd.read_parquet(split / "test.parquet")
    seed_and_pin(cfg.train.seed, cfg.train.threads)  # as the training road does (lib/road.py)
    centroids = tokenizer_centroids(codes_dir) if cfg.model.digit_init == "codebook" else None
    module, loader, _ = _module(cfg, digits, codebook_size, train, centroids=centroids)
    opt = module.configure_optimizers()["optimizer"]
    tc = cfg.train

    def step(inp, tgt):
        opt.zero_grad()
        with autocast(tc, "cpu"):
            loss = module.model.loss(inp, tgt, tc.loss_chunk) / module.positions_per_batch
        loss.backward()
        opt.step()

    per_epoch = []
    for _ in range(epochs):
        module.train()
        t = time.perf_counter()
        for b, (inp, tgt) in enumerate(loader):
            if batches and b == batches:
                break
            step(inp, tgt)
        seconds = time.perf_counter() - t
        per_epoch.append(seconds * len(loader) / batches if batches else seconds)
    out = {"set": sets, "digits": int(digits.shape[1]), "train_seconds_per_epoch": round(min(per_epoch), 2),
           "batches_per_epoch": len(loader),
           "timed_batches": batches or len(loader)}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as prof
        batches = iter(loader)
        with prof(activities=[ProfilerActivity.CPU]) as p:
            for _ in range(profile):
                step(*next(batches))
        rows = sorted(p.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
        total = sum(e.self_cpu_time_total for e in p.key_averages())
        out["profile_self_cpu_share"] = {e.key: round(e.self_cpu_time_total / total, 3) for e in rows}
    module.eval()
    t = time.perf_counter()
    with autocast(tc, "cpu"):
        recommend(module.model, test, cfg.top_k, progress=False)
    out |= {"test_users_per_second": round(len(test) / (time.perf_counter() - t), 1), "test_users": len(test),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": torch.get_num_threads()}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--codes", type=Path, default=ROOT / "codes/opq_w128", help="codes.npy + meta.json")
    p.add_argument("--config", action="append", default=[], metavar="'KEY=VALUE ...'",
                   help="one configuration: overrides of the rpg section, space-separated (repeatable)")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="profile N training batches")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batches", type=int, default=0, help="time only this many batches of an epoch and project "
                                                          "the epoch from them (0 = whole epochs)")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one is not None:
        import torch
        torch.set_num_threads(args.threads)
        print(json.dumps(run_one(args.codes, args.epochs, args.one.split(), args.profile, args.batches)))
        return
    for config in args.config or [""]:
        out = subprocess.run([sys.executable, __file__, "--one", config, "--epochs", str(args.epochs),
                              "--codes", str(args.codes), "--profile", str(args.profile),
                              "--threads", str(args.threads),
                              "--batches", str(args.batches)], check=True, capture_output=True, text=True).stdout
        print(out.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
