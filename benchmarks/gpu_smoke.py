"""GPU smoke test: every model family trains, validates and recommends with `device: gpu`.

The pipeline's `device: auto` picks a GPU when there is one, and the training code is mostly
exercised on CPU; this script runs each family once, on tiny synthetic data it builds itself,
through the same lib calls as the training stages (lib.models.training.fit / refit /
lib.models.recommend.recommend, lib.sid.training.fit / lib.sid.recommend.recommend, lib.rpg.training), with
configs built from the dataclasses (no params.yaml, no dvc). Per family it prints ok/FAIL,
seconds and peak GPU memory; a few minutes at most on a GPU, about a minute on one CPU thread.

    python benchmarks/gpu_smoke.py                 # on the GPU; prints "no GPU" and exits 0 without one
    python benchmarks/gpu_smoke.py --device cpu    # the same runs on CPU (checks the script and the families)

Exit status: 0 when every family ran (or there is no GPU to check), 1 when any failed.
"""
from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_WARM = 40  # items that occur in training
N_COLD = 4  # items N_WARM+1..N_WARM+N_COLD: no interaction (zero_cold_ids, decode.cold_every)
N_ITEMS = N_WARM + N_COLD
SID_SIZES = (6, 4, 2)  # 3 code columns, 6*4*2 = 48 >= N_ITEMS distinct IDs; the last plays the collision level


def synthetic_split(n_users: int = 64, seed: int = 0):
    """Users walk the warm items cyclically (next = current + 1): train / val / test as the split writes them.

    Train holds each user's first L items, val asks for item L+1 given those, test for L+2 given
    L+1 (leave-one-out style, as the evaluator reads them).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, val, test = [], [], []
    for u in range(n_users):
        n, start = int(rng.integers(4, 9)), int(rng.integers(1, N_WARM + 1))
        seq = [(start + j - 1) % N_WARM + 1 for j in range(n + 2)]
        rows += [(u, it, j) for j, it in enumerate(seq[:n])]
        val.append((u, seq[:n], seq[n]))
        test.append((u, seq[:n + 1], seq[n + 1]))
    cols = ["user", "history", "target"]
    return (pd.DataFrame(rows, columns=["user", "item", "timestamp"]), pd.DataFrame(val, columns=cols),
            pd.DataFrame(test, columns=cols))


def synthetic_codes():
    """(N+1, 3) unique Semantic IDs (row 0 = -1) and the tokenizer's meta, as codes.npy + meta.json hold them."""
    import numpy as np

    i = np.arange(N_ITEMS)
    a, b, c = SID_SIZES
    codes = np.vstack([np.full(3, -1), np.stack([i // (b * c), (i // c) % b, i % c], axis=1)]).astype(np.int64)
    offsets = np.cumsum([3, *SID_SIZES[:-1]])
    meta = {"codebook_sizes": list(SID_SIZES), "token_offsets": [int(o) for o in offsets], "levels": 2,
            "special_tokens": {"pad": 0, "bos": 1, "eos": 2}, "vocab_size": 3 + sum(SID_SIZES)}
    return codes, meta


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)


def run_seqrec(backbone: str, representation: str, loss: str, data, tmp: Path, args) -> dict:
    import numpy as np

    from lib.models.config import ModelConfig, SeqRecConfig, TrainConfig
    from lib.models.item_repr import ItemFeatures
    from lib.models.recommend import recommend
    from lib.models.training import fit, refit
    from lib.trainer import seed_and_pin, torch_device

    train, val, test, codes, _ = data
    warm = np.zeros(N_ITEMS + 1, dtype=bool)
    warm[train["item"].to_numpy()] = True
    content = np.random.default_rng(1).normal(size=(N_ITEMS + 1, 16)).astype(np.float32)
    features = ItemFeatures(content=content, codes=codes[:, :2], warm=warm)  # collision level left out
    cfg = SeqRecConfig(
        ModelConfig(d_model=32, n_layers=2, n_heads=2, dropout=0.1, max_len=10),
        TrainConfig(loss=loss, ce_chunk=64, batch_size=16, max_epochs=args.epochs, patience=args.epochs,
                    device=args.device, threads=args.threads, seed=0), top_k=10)
    seed_and_pin(0, args.threads)  # as the training road does (lib/road.py)
    best, facts = fit(backbone, representation, cfg, train, val, N_ITEMS, features, str(tmp / "ckpt"),
                      progress=False)
    device = torch_device(args.device)
    recs = recommend(best.model, test, cfg.top_k, device=device, progress=False)
    for items, hist in zip(recs["items"], test["history"], strict=True):
        check(len(items) == min(cfg.top_k + len(set(hist)), N_ITEMS), "recommendation list length")
        check(len(set(items.tolist())) == len(items) and items.min() >= 1 and items.max() <= N_ITEMS,
              "recommended items are distinct real items")
    # retrain_on_validation's path: a plain Trainer without validation, then decoding again
    seed_and_pin(0, args.threads)  # as the training road does (lib/road.py)
    full = refit(backbone, representation, cfg, train, N_ITEMS, features, epochs=1, progress=False)
    check(len(recommend(full.model, test, cfg.top_k, device=device, progress=False)) == len(test), "refit lists")
    return facts


def run_sid(trie_softmax: bool, data, tmp: Path, args) -> dict:
    from lib.sid.config import DecodeConfig, GPT2SidConfig, SidModelConfig, SidTrainConfig
    from lib.sid.recommend import invalid_rate, recommend
    from lib.sid.training import fit
    from lib.sid.vocab import SidVocab
    from lib.trainer import seed_and_pin, torch_device

    train, val, test, codes, meta = data
    cfg = GPT2SidConfig(
        SidModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.1, max_len=10, user_buckets=4,
                       trie_softmax=trie_softmax),
        SidTrainConfig(lr=3e-3, batch_size=16, max_epochs=args.epochs, patience=args.epochs, val_every=1,
                       val_users=32, device=args.device, threads=args.threads, seed=0),
        DecodeConfig(beam_width=12, batch_size=8, cold_every=5), top_k=10)
    vocab = SidVocab.from_meta(codes, meta, cfg.model.user_buckets)
    seed_and_pin(0, args.threads)  # as the training road does (lib/road.py)
    module, facts = fit(cfg, vocab, meta, train, val, str(tmp / "ckpt"), progress=False)
    recs, beams = recommend(module.model, vocab, module.trie, test, cfg, device=torch_device(args.device),
                            progress=False, cold_items=module.cold_items)
    for items, hist in zip(recs["items"], test["history"], strict=True):
        check(len(items) == cfg.top_k and len(set(items.tolist())) == cfg.top_k, "top_k distinct items per user")
        check(not set(items.tolist()) & set(hist), "no seen item generated (decode.exclude_seen)")
    check(invalid_rate(beams, vocab) == 0.0, "every generated Semantic ID is a real item")
    return facts


def run_rpg(precision: str, data, tmp: Path, args) -> dict:
    import numpy as np

    from lib.models.recommend import recommend
    from lib.rpg.config import RPGConfig, RPGModelConfig, RPGTrainConfig
    from lib.rpg.training import autocast, fit, refit
    from lib.trainer import seed_and_pin, torch_device

    train, val, test, codes, _ = data
    digits = np.vstack([np.full(4, -1), np.random.default_rng(2).integers(0, 8, size=(N_ITEMS, 4))])
    cfg = RPGConfig(RPGModelConfig(d_model=32, n_layers=2, n_heads=2, d_ff=64, dropout=0.1, max_len=10,
                                   digit_init="random"),
                    RPGTrainConfig(batch_size=16, warmup_steps=4, max_epochs=args.epochs, patience=args.epochs,
                                   device=args.device, threads=args.threads, precision=precision, seed=0), top_k=10)
    seed_and_pin(0, args.threads)  # as the training road does (lib/road.py)
    module, facts = fit(cfg, digits, 8, train, val, str(tmp / "ckpt"), progress=False)
    device = torch_device(args.device)
    with autocast(cfg.train, device):
        recs = recommend(module.model, test, cfg.top_k, device=device, progress=False)
    for items, hist in zip(recs["items"], test["history"], strict=True):
        check(len(items) == min(cfg.top_k + len(set(hist)), N_ITEMS), "recommendation list length")
        check(items.min() >= 1 and items.max() <= N_ITEMS, "recommended items are real items")
    seed_and_pin(0, args.threads)  # as the training road does (lib/road.py)
    full = refit(cfg, digits, 8, train, epochs=1, progress=False)
    check(len(recommend(full.model, test, cfg.top_k, device=device, progress=False)) == len(test), "refit lists")
    return facts


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["gpu", "cpu"], default="gpu", help="the params `device` every run is given")
    p.add_argument("--epochs", type=int, default=2, help="training epochs per family (each validated)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--only", default="", help="run only the families whose name contains this")
    args = p.parse_args()

    import torch

    if args.device == "gpu" and not torch.cuda.is_available():
        print("no GPU: torch.cuda.is_available() is False, nothing checked (--device cpu runs the same on CPU)")
        return 0
    import lightning  # noqa: F401 - sets its loggers to INFO on import; quieten them after

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # "GPU available: ..." banners, once per Trainer
    for noise in (".*does not have many workers.*",  # num_workers=0 is the params default
                  ".*but have no `val_dataloader`.*",  # refit trains without validation on purpose
                  ".*LeafSpec.*"):  # a deprecation inside Lightning itself
        warnings.filterwarnings("ignore", noise)
    cuda = args.device == "gpu"
    if cuda:
        print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")

    codes, meta = synthetic_codes()
    data = (*synthetic_split(), codes, meta)
    families = [(f"{bb}/{rep}", lambda tmp, bb=bb, rep=rep: run_seqrec(bb, rep, "ce", data, tmp, args))
                for bb in ("sasrec", "gpt2") for rep in ("id", "content_plus_id", "sid_unigram")]
    families += [("sasrec/id bce", lambda tmp: run_seqrec("sasrec", "id", "bce", data, tmp, args)),
                 ("gpt2_sid", lambda tmp: run_sid(True, data, tmp, args)),
                 ("gpt2_sid no-trie-softmax", lambda tmp: run_sid(False, data, tmp, args)),
                 ("rpg", lambda tmp: run_rpg("32-true", data, tmp, args)),
                 ("rpg bf16-mixed", lambda tmp: run_rpg("bf16-mixed", data, tmp, args))]
    families = [(n, f) for n, f in families if args.only in n]

    failed = []
    print(f"{'family':<26} {'status':<6} {'seconds':>8} {'peak GPU MiB':>13} {'val ndcg@10':>12}")
    for name, run in families:
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        error = None
        with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
            try:
                facts = run(Path(tmp))
                if cuda:
                    check(torch.cuda.max_memory_allocated() > 0, "nothing was allocated on the GPU")
            except Exception as e:  # report every family, then fail at the end
                error, facts = e, {}
                trace = traceback.format_exc()
        seconds = time.perf_counter() - t0
        peak = f"{torch.cuda.max_memory_allocated() / 2**20:.1f}" if cuda else "-"
        ndcg = facts.get("best_val_ndcg@10")
        print(f"{name:<26} {'ok' if error is None else 'FAIL':<6} {seconds:>8.1f} {peak:>13} "
              f"{'-' if ndcg is None else f'{ndcg:.4f}':>12}", flush=True)
        if error is not None:
            failed.append(name)
            print("    " + trace.rstrip().replace("\n", "\n    "), flush=True)
    print(f"{len(families) - len(failed)}/{len(families)} families ok on {args.device}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
