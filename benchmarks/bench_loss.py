"""Benchmark: the rankers' loss alone, forward + backward, per matmul dtype and chunk size.

One batch-sized problem (positions x classes x width as SASRec-ID's batches on Beauty: ~1,100
real positions of 128 sequences, ~11,800 known items, d = 64), timed as the median of `--reps`
after one warm-up, on `--threads` torch threads. Prints the machine first: the bfloat16 figures
depend on whether the CPU multiplies bfloat16 natively (AVX-512 BF16, AMX) or not (AVX2 only).

    python benchmarks/bench_loss.py [--positions 1100] [--classes 11800] [--threads 1]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lib.models.losses import full_softmax_ce, sampled_softmax_ce  # noqa: E402


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def timed(fn, h0, e0, reps: int) -> float:
    times = []
    for _ in range(reps + 1):
        h, e = h0.clone().requires_grad_(), e0.clone().requires_grad_()
        t = time.perf_counter()
        fn(h, e).backward()
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--positions", type=int, default=1100)
    p.add_argument("--classes", type=int, default=11800)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--chunks", default="64,128,256,512")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cpu: {cpu_name()}; torch {torch.__version__}, capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s); {args.positions} positions x {args.classes} classes x d={args.dim}")
    g = torch.Generator().manual_seed(0)
    h0 = torch.randn(args.positions, args.dim, generator=g) * 0.3
    e0 = torch.randn(args.classes, args.dim, generator=g) * 0.3
    y = torch.randint(0, args.classes, (args.positions,), generator=g)
    flops = 6 * args.positions * args.classes * args.dim  # three (M x C x d) matmuls
    def matmuls(h, e, chunk=128):  # the floor: the fused loss's three products alone, float32, no softmax
        for s in range(0, h.shape[0], chunk):
            z = h[s:s + chunk] @ e.T
            z @ e, z.T @ h[s:s + chunk]
        return (h.sum() + e.sum()) * 0

    rows = [("three matmuls alone, float32, chunk 128", matmuls),
            ("F.cross_entropy, all logits, float32", lambda h, e: full_softmax_ce(h, e, y, 0))]
    for dtype in (torch.float32, torch.bfloat16):
        rows += [(f"full softmax, {str(dtype)[6:]}, chunk {c}",
                  lambda h, e, c=c, d=dtype: full_softmax_ce(h, e, y, c, d)) for c in map(int, args.chunks.split(","))]
    rows += [(f"sampled softmax, {k} negatives", lambda h, e, k=k: sampled_softmax_ce(h, e, y, k))
             for k in (1024, 4096)]
    for name, fn in rows:
        ms = timed(fn, h0, e0, args.reps)
        print(f"{name:42s} {ms:8.1f} ms   ({flops / ms / 1e6:6.1f} effective GFLOP/s of the full softmax)", flush=True)


if __name__ == "__main__":
    main()
