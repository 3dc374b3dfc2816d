"""Do two code revisions give the same outputs? The check behind a `dvc commit -f` after a refactor.

Runs the training stages (every seqrec family, the generator, RPG on the opq codes, every tokenizer
method) on one tiny synthetic split with the code of revision OLD (extracted with `git archive`) and
of the working tree, then compares their outputs byte for byte: top-K lists, codes, checkpoint
tensors, run.json and training metrics without wall-clock keys. Prints one line per output and
exits non-zero on any difference. A stage younger than OLD (pq/opq, RPG) is skipped on both sides,
with the reason printed. A change that passes leaves the committed runs valid, so their `dvc.lock` entries
may be re-recorded with `dvc commit -f <stages>` instead of re-training them (say so in the commit).

    python benchmarks/output_neutral.py OLD_REV [--skip rpg]

--skip LABEL leaves a stage out on both sides: one the change means to alter and that has no committed
run to protect (say so in the commit).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
N_ITEMS, N_USERS = 24, 60
CLOCK = ("seconds", "per_second", "peak_memory")  # wall-clock facts differ between any two runs
# params.yaml's, not RPGTrainConfig's 32-true: the committed RPG runs train and score under this autocast
RPG_PRECISION = yaml.safe_load((ROOT / "params.yaml").read_text())["rpg"]["train"]["precision"]
SEQREC = {"model": {"d_model": 16, "n_layers": 1, "n_heads": 1, "dropout": 0.0, "max_len": 8},
          "train": {"max_epochs": 3, "patience": 3, "batch_size": 16, "lr": 0.01, "device": "cpu", "threads": 1},
          "top_k": 10}
PARAMS = {
    "sasrec": SEQREC,
    "gpt2": SEQREC,
    "gpt2_sid": {"model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_len": 8},
                 "train": {"lr": 0.003, "batch_size": 16, "max_epochs": 4, "patience": 2, "val_every": 2,
                           "val_users": 20, "device": "cpu", "threads": 1},
                 "decode": {"beam_width": 12, "batch_size": 8, "cold_every": 3}, "top_k": 12},
    "rqvae": {"levels": 2, "codebook_size": 4, "latent_dim": 4, "hidden": [16], "epochs": 6, "warmup_epochs": 2,
              "batch_size": 16, "threads": 1},
    "rpg": {"model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_len": 8},
            "train": {"lr": 0.01, "warmup_steps": 3, "batch_size": 16, "max_epochs": 3, "patience": 3,
                      "device": "cpu", "threads": 1, "precision": RPG_PRECISION},
            "top_k": 10},
    "tokenizers": {m: {"protocol": "gts", "set": {"method": m}} for m in ("rqvae", "rqkmeans", "random", "lsh")}
    | {m: {"protocol": "gts", "set": {"method": m, "levels": 4, "codebook_size": 4}} for m in ("pq", "opq")},
    "runs": {
        "rankers": {"r_id": {"backbone": "sasrec", "protocol": "gts"}},
        "content_rankers": {"r_content": {"backbone": "gpt2", "representation": "content_plus_id", "protocol": "gts"}},
        "code_rankers": {"r_codes": {"backbone": "sasrec", "representation": "sid_plus_id", "tokenizer": "rqvae",
                                     "protocol": "gts"}},
        "generators": {"g": {"backbone": "gpt2", "tokenizer": "rqvae", "protocol": "gts"}},
        "parallel_generators": {"rpg": {"backbone": "gpt2", "representation": "sid_parallel", "tokenizer": "opq",
                                        "protocol": "gts"}},
    },
}
GENERATORS = {"generators": "train_generator.py", "parallel_generators": "train_rpg.py"}  # family -> stage script
# stages younger than this benchmark: label -> the files a revision needs to run it (an older one skips it)
NEEDS = {"tokenizer@pq": ["lib/tokenizers/pq.py"], "tokenizer@opq": ["lib/tokenizers/pq.py"],
         "rpg": ["lib/tokenizers/pq.py", "stages/train_rpg.py"]}  # rpg reads the opq codes


def write_inputs(d: Path) -> None:
    """Users walk the item cycle; the last 3 items have no training interaction; random content vectors."""
    rng = np.random.default_rng(0)
    rows, evals = [], []
    for u in range(N_USERS):
        start = int(rng.integers(1, N_ITEMS - 2))
        seq = [(start + j - 1) % (N_ITEMS - 3) + 1 for j in range(7)]
        rows += [(u, it, j) for j, it in enumerate(seq[:5])]
        evals.append((u, seq[:5], seq[5], 5, 5, False, False))
    split = d / "split"
    split.mkdir(parents=True)
    train = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    train.to_parquet(split / "train.parquet")
    train.to_parquet(split / "train_full.parquet")
    cols = ["user", "history", "target", "target_timestamp", "history_length", "target_cold", "user_cold"]
    for name in ("val", "test"):
        pd.DataFrame(evals, columns=cols).to_parquet(split / f"{name}.parquet")
    (split / "split.json").write_text(json.dumps({"protocol": "gts", "type": "global_temporal",
                                                  "retrain_on_validation": False}))
    # every item known at both cut-offs (lib/catalogue.py); revisions before issue 29 ignore the file
    known = pd.DataFrame({"item": np.arange(1, N_ITEMS + 1), "first_seen": 0, "known_val": True, "known_test": True})
    known.to_parquet(split / "catalogue.parquet")
    pd.DataFrame({"item": np.arange(1, N_ITEMS + 1), "title": "x"}).to_parquet(d / "items.parquet")
    emb = np.vstack([np.zeros(8), rng.normal(size=(N_ITEMS, 8))]).astype(np.float32)
    np.save(d / "emb.npy", emb)
    (d / "emb_meta.json").write_text(json.dumps({"model": "synthetic", "dim": 8, "n_items": N_ITEMS}))
    (d / "params.yaml").write_text(yaml.safe_dump(PARAMS))


def commands(code: Path, d: Path) -> dict[str, list[str]]:
    """stage label -> command line, run from `d` with the stage scripts of `code`."""
    py = [sys.executable]
    out = {f"tokenizer@{m}": py + [str(code / "stages/tokenizer.py"), "--name", m, "--embeddings", "emb.npy",
                                   "--embed-meta", "emb_meta.json", "--split-dir", "split",
                                   "--out-dir", f"tok/{m}", "--metrics", f"metrics/tok_{m}.json",
                                   "--plots-dir", f"plots/tok_{m}"]
           for m in PARAMS["tokenizers"]}
    common = ["--split-dir", "split", "--items", "items.parquet"]
    for family, runs in PARAMS["runs"].items():
        for run, spec in runs.items():
            outs = ["--model-dir", f"models/{run}", "--recs-dir", f"recs/{run}", "--metrics", f"metrics/{run}.json",
                    "--plots-dir", f"plots/{run}", "--run-info", f"results/{run}.json"]
            codes = f"tok/{spec.get('tokenizer')}"
            if family in GENERATORS:
                out[run] = py + [str(code / "stages" / GENERATORS[family]), "--run", run, "--split-dir", "split",
                                 "--codes-dir", codes, *outs]
            else:
                extra = {"content_rankers": ["--embeddings", "emb.npy"], "code_rankers": ["--codes", codes]}
                out[run] = py + [str(code / "stages/train_seqrec.py"), "--family", family, "--run", run, *common,
                                 *extra.get(family, []), *outs]
    return out


def fingerprint(d: Path) -> dict[str, str]:
    """Output file -> digest; JSON without wall-clock keys, checkpoints by their tensors."""
    out = {}
    for f in sorted(p for p in d.rglob("*") if p.is_file() and not p.is_relative_to(d / "plots")):
        rel = str(f.relative_to(d))
        if f.suffix == ".json":
            obj = json.loads(f.read_text())
            obj = {k: v for k, v in obj.items() if not any(c in k for c in CLOCK)} if isinstance(obj, dict) else obj
            blob = json.dumps(obj, sort_keys=True).encode()
        elif f.suffix in (".ckpt", ".pt"):
            state = torch.load(f, map_location="cpu", weights_only=False)
            tensors = state.get("state_dict", state) if isinstance(state, dict) else {}
            blob = b"".join(k.encode() + v.numpy().tobytes() for k, v in sorted(tensors.items())
                            if torch.is_tensor(v))
        else:
            blob = f.read_bytes()
        out[rel] = hashlib.md5(blob).hexdigest()
    return out


def skipped(old_code: Path, rev: str) -> dict[str, str]:
    """stage label -> why neither side runs it: revision `rev` predates it (lacks a file the stage needs)."""
    out = {}
    for label, files in NEEDS.items():
        lacking = [f for f in files if not (old_code / f).is_file()]
        if lacking:
            out[label] = f"{rev} has no {', '.join(lacking)}"
    return out


def run_all(code: Path, d: Path, skip: dict[str, str]) -> dict[str, str]:
    write_inputs(d)
    for label, cmd in commands(code, d).items():
        if label in skip:
            continue
        p = subprocess.run(cmd + ["--params", "params.yaml"], cwd=d, capture_output=True, text=True)
        if p.returncode:
            raise SystemExit(f"{label} failed under {code}:\n{p.stderr[-2000:]}")
    return fingerprint(d)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="git revision of the old code (the one the committed runs were made with)")
    p.add_argument("--skip", action="append", default=[], metavar="LABEL",
                   help="a stage label to leave out on both sides (e.g. rpg), repeatable")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_code = tmp / "old_code"
        old_code.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive.stdout, check=True)
        skip = skipped(old_code, args.old) | {label: "--skip" for label in args.skip}
        old, new = run_all(old_code, tmp / "old", skip), run_all(ROOT, tmp / "new", skip)
    for label, why in skip.items():
        print(f"skipped {label}: {why}")
    differ = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    for k in sorted(old.keys() | new.keys()):
        print(f"{'DIFFERS' if k in differ else 'same   '} {k}")
    print(f"{len(differ)} of {len(old.keys() | new.keys())} outputs differ between {args.old} and the working tree"
          + (f" ({len(skip)} stages skipped)" if skip else ""))
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
