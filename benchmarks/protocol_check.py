"""Run one model under another split protocol in a scratch directory and print its test metrics.

For the published-number checks of the issues, e.g. the TIGER protocol (leave-one-out,
histories of at most 20 items) without touching the committed pipeline outputs:

    python benchmarks/protocol_check.py --model gpt2_sid --split leave_one_out --max-len 20 --work /tmp/loo
    python benchmarks/protocol_check.py --model sasrec_id --split leave_one_out --max-len 50 --work /tmp/loo

`--set` overrides any other param the way `dvc exp run -S` does, for a hyper-parameter check of one
model on the default split (choose on the printed validation figure, then read test):

    python benchmarks/protocol_check.py --model sasrec_id --split global_temporal \
        --set sasrec.model.d_model=128 --set sasrec.model.n_heads=2 --work /tmp/d128h2

It runs the same stage scripts as dvc.yaml (split, rqvae, train_*) with a copy of params.yaml
carrying the overrides, reads data/processed and data/embed of the main pipeline, and scores
the test lists with lib/metrics.py (seen items removed, full catalogue).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True)


def apply_override(params: dict, assignment: str) -> None:
    """`a.b.c=value` (value read as YAML) replaces an existing param; an unknown key is an error."""
    key, sep, value = assignment.partition("=")
    if not sep:
        raise SystemExit(f"error: --set {assignment!r}: expected KEY=VALUE")
    *parents, leaf = key.split(".")
    node = params
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        raise SystemExit(f"error: --set {assignment!r}: params.yaml has no {key}")
    node[leaf] = yaml.safe_load(value)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="gpt2_sid, or <sasrec|gpt2>_<representation>")
    p.add_argument("--split", default="leave_one_out", choices=["leave_one_out", "global_temporal"])
    p.add_argument("--max-len", type=int, default=None, help="override the model's history length")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a param, e.g. sasrec.model.d_model=128 (repeatable)")
    p.add_argument("--work", type=Path, required=True, help="scratch directory for every output")
    args = p.parse_args()

    import numpy as np
    import pandas as pd

    from lib import metrics

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["split"]["type"] = args.split
    section = "gpt2_sid" if args.model == "gpt2_sid" else args.model.split("_", 1)[0]
    if args.max_len:
        params[section]["model"]["max_len"] = args.max_len
    for assignment in args.set:
        apply_override(params, assignment)
    w = args.work.resolve()
    w.mkdir(parents=True, exist_ok=True)
    (w / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    pp = ["--params", str(w / "params.yaml")]
    run(["stages/split.py", "--interactions", "data/processed/interactions.parquet", "--out-dir", str(w / "split"),
         "--metrics", str(w / "split.json"), *pp])
    out = ["--split-dir", str(w / "split"), "--model-dir", str(w / "model"), "--recs-dir", str(w / "recs"),
           "--metrics", str(w / "train.json"), "--plots-dir", str(w / "plots"), *pp]
    if args.model == "gpt2_sid" or "_sid_" in args.model:
        run(["stages/rqvae.py", "--embeddings", "data/embed/embeddings.npy", "--embed-meta", "data/embed/meta.json",
             "--split-dir", str(w / "split"), "--out-dir", str(w / "rqvae"), "--metrics", str(w / "rqvae.json"),
             "--plots-dir", str(w / "rqvae_plots"), *pp])
    if args.model == "gpt2_sid":
        run(["stages/train_gpt2_sid.py", "--codes-dir", str(w / "rqvae"), *out])
    else:
        backbone, rep = args.model.split("_", 1)
        run(["stages/train_seqrec.py", "--backbone", backbone, "--representation", rep,
             "--items", "data/processed/items.parquet", "--embeddings", "data/embed/embeddings.npy",
             "--codes", str(w / "rqvae"), *out])
    test = pd.read_parquet(w / "split/test.parquet")
    recs = pd.read_parquet(w / "recs/test.parquet")
    assert (recs["user"].to_numpy() == test["user"].to_numpy()).all()
    top = metrics.top_k(list(recs["items"]), 20, seen=list(test["history"]))
    ranks = metrics.target_ranks(top, test["target"].to_numpy(np.int64))
    res = {"model": args.model, "split": args.split, "max_len": params[section]["model"]["max_len"],
           "overrides": args.set, "test_users": len(test)}
    for k in (5, 10, 20):
        res[f"recall@{k}"] = round(float(metrics.hit_rate(ranks, k).mean()), 5)
        res[f"ndcg@{k}"] = round(float(metrics.ndcg(ranks, k).mean()), 5)
    res["train"] = json.loads((w / "train.json").read_text())
    (w / "result.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
