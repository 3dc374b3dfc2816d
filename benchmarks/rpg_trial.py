"""Benchmark: one RPG configuration trained by the real stage on the real split, outside DVC (a trial).

For choosing RPG's configuration on validation before a run goes into the runs table: the trial is
`runs.parallel_generators.<name>` = {tokenizer, protocol, set: overrides of `rpg`} added to a copy of
params.yaml, trained by stages/train_rpg.py with every output under --out/<name> (nothing in data/,
metrics/ or dvc.lock changes). Prints the training facts: best validation NDCG@10 and its epoch,
seconds per epoch, scoring time, peak memory; the per-epoch curve is in --out/<name>/plots.
Test lists are written by the stage but not evaluated here: configurations are chosen on validation.

    python benchmarks/rpg_trial.py w128 --tokenizer opq_w128 --set model.d_model=128 --set train.max_epochs=20
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", help="the trial's name (a run name that is not in the runs table)")
    p.add_argument("--tokenizer", default="opq", help="a tokenizer whose data/tokenizers/<name> exists")
    p.add_argument("--protocol", default="gts")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override of params `rpg`")
    p.add_argument("--out", type=Path, default=Path("/tmp/rpg_trials"))
    args = p.parse_args()

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if args.name in params["runs"]["parallel_generators"]:
        sys.exit(f"error: {args.name} is a run of the runs table; name the trial otherwise")
    overrides = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    params["runs"]["parallel_generators"][args.name] = {
        "backbone": "gpt2", "representation": "sid_parallel", "tokenizer": args.tokenizer,
        "protocol": args.protocol, "set": overrides}
    out = args.out / args.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cmd = [sys.executable, "stages/train_rpg.py", "--run", args.name, "--params", str(out / "params.yaml"),
           "--split-dir", f"data/split/{args.protocol}", "--codes-dir", f"data/tokenizers/{args.tokenizer}",
           "--model-dir", str(out / "model"), "--recs-dir", str(out / "recs"), "--metrics", str(out / "facts.json"),
           "--plots-dir", str(out / "plots"), "--run-info", str(out / "run.json")]
    subprocess.run(cmd, cwd=ROOT, check=True)
    facts = json.loads((out / "facts.json").read_text())
    print(json.dumps({"trial": args.name, "tokenizer": args.tokenizer, "set": overrides, **facts}, indent=1))


if __name__ == "__main__":
    main()
