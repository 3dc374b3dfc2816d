"""Do two code revisions give the same outputs? Every training family, byte for byte, through `dvc repro`.

For each side (git revision OLD, and the working tree) a scratch DVC repository gets that side's code,
dvc.yaml and params.yaml, the same synthetic raw files (tests/conftest.py's Amazon-style generator) and
the same small-model overlay (OVERLAY below, merged into both params files). `dvc repro` then runs that
side's own stages — parse, preprocess, split, item vectors, tokenizers, one run per family and its
evaluation — so no stage command line is copied here. The outputs are compared byte for byte (JSON
without wall-clock keys, checkpoints by their tensors), with paths mapped across layouts (PATHS).

    python tools/output_neutral.py OLD_REV [--runs sasrec_id,gpt2_sid] [--keep DIR]

Prints one line per output and exits 1 when any differs. Used before merging a refactor that should
change no result; say in the commit which outputs differed and why.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import amazon_raw, write_gz  # noqa: E402  (the synthetic raw files the tests use)

# one run per training family, on the default vectors and codes (families and tables of params `runs`)
RUNS = {"sasrec_id": "rankers", "sasrec_content_plus_id": "content_rankers", "sasrec_sid_plus_id": "code_rankers",
        "gpt2_sid": "generators", "rpg_opq": "parallel_generators"}
TINY = {"model": {"d_model": 16, "n_layers": 1, "n_heads": 1, "dropout": 0.0, "max_len": 8},
        "train": {"max_epochs": 3, "patience": 3, "batch_size": 16, "lr": 0.01, "device": "cpu", "threads": 1},
        "top_k": 10}
OVERLAY = {  # merged into each side's params.yaml: small models on a small synthetic dataset
    "sasrec": TINY, "gpt2": TINY,
    "gpt2_sid": {"model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_len": 8},
                 "train": {"lr": 0.003, "batch_size": 16, "max_epochs": 4, "patience": 2, "val_every": 2,
                           "val_users": 20, "device": "cpu", "threads": 1},
                 "decode": {"beam_width": 12, "batch_size": 8}, "top_k": 12},
    "rpg": {"model": {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "dropout": 0.0, "max_len": 8},
            "train": {"lr": 0.01, "warmup_steps": 3, "batch_size": 16, "max_epochs": 3, "patience": 3,
                      "device": "cpu", "threads": 1}, "top_k": 10},
    "rqvae": {"levels": 2, "codebook_size": 4, "latent_dim": 4, "hidden": [16], "epochs": 6, "warmup_epochs": 2,
              "batch_size": 16},
    "tokenizers": {"opq_w128": {"set": {"levels": 4, "codebook_size": 4, "pca_dim": 16}}},  # 4 x 4 dims = d_model
    "embed": {"batch_size": 16},
}
# the same output under another path in another layout (before issue 30): old path pattern -> new path
PATHS = [(r"^data/embed/", "data/vectors/minilm/"), (r"^metrics/embed\.json$", "metrics/vectors/minilm.json"),
         (r"^data/tokenizers/([^/]+)/(codes\.npy|meta\.json)$", r"codes/\1/\2")]
CLOCK = ("seconds", "per_second", "peak_memory")  # wall-clock facts differ between any two runs
COMPARED = ("data/vectors", "data/embed", "data/tokenizers", "codes", "data/recs", "data/models", "data/split",
            "results", "metrics/train", "metrics/eval", "metrics/tokenizers", "metrics/split", "metrics/vectors",
            "metrics/embed.json")


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def scratch_repo(code: Path, d: Path) -> None:
    """`d`: a git + DVC repository with `code`'s pipeline, the overlaid params and the synthetic raw files."""
    for name in ("stages", "lib"):
        subprocess.run(["cp", "-r", str(code / name), str(d / name)], check=True)
    for name in ("dvc.yaml", ".dvcignore"):
        (d / name).write_bytes((code / name).read_bytes())
    params = merge(yaml.safe_load((code / "params.yaml").read_text()), OVERLAY)
    (d / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    reviews, meta = amazon_raw(seed=0, n_users=80, n_items=30)
    write_gz(d / "data/raw/reviews_Beauty_5.json.gz", reviews)
    write_gz(d / "data/raw/meta_Beauty.json.gz", meta)
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["git", "add", "-A"],  # dvclive wants a commit
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "scratch"]):
        subprocess.run(cmd, cwd=d, check=True, env=_env(), capture_output=True)


def _env() -> dict:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


def repro(d: Path, runs: dict[str, str]) -> None:
    targets = [f"{step}_{family}@{run}" for run, family in runs.items() for step in ("train", "evaluate")]
    p = subprocess.run(["dvc", "repro", *targets], cwd=d, capture_output=True, text=True, env=_env())
    if p.returncode:
        raise SystemExit(f"dvc repro failed in {d}:\n{(p.stdout + p.stderr)[-3000:]}")


def digest(f: Path) -> str:
    if f.suffix == ".json":
        obj = json.loads(f.read_text())
        if isinstance(obj, dict):
            obj = {k: v for k, v in obj.items() if not any(c in k for c in CLOCK)}
        blob = json.dumps(obj, sort_keys=True).encode()
    elif f.suffix in (".ckpt", ".pt"):
        state = torch.load(f, map_location="cpu", weights_only=False)
        tensors = state.get("state_dict", state) if isinstance(state, dict) else {}
        blob = b"".join(k.encode() + v.numpy().tobytes() for k, v in sorted(tensors.items()) if torch.is_tensor(v))
    elif f.suffix == ".npy":  # by value: integer codes are stored compact since issue 30
        arr = np.load(f)
        blob = (arr.astype(np.int64) if arr.dtype.kind == "i" else arr).tobytes() + str(arr.shape).encode()
    else:
        blob = f.read_bytes()
    return hashlib.md5(blob).hexdigest()


def fingerprint(d: Path) -> dict[str, str]:
    """Output path (in the new layout) -> digest."""
    out = {}
    for top in COMPARED:
        root = d / top
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file()
                                                     and not p.name.startswith(".")) if root.is_dir() else []
        for f in files:
            rel = str(f.relative_to(d))
            for old, new in PATHS:
                rel = re.sub(old, new, rel)
            out[rel] = digest(f)
    return out


def json_keys(sides: dict[str, Path], rel: str) -> str:
    """The top-level keys whose values differ between the two sides' JSON at `rel` (new-layout path)."""
    def load(side: str) -> dict:
        root = sides[side]
        for f in root.rglob("*.json"):
            mapped = str(f.relative_to(root))
            for old, new in PATHS:
                mapped = re.sub(old, new, mapped)
            if mapped == rel:
                return json.loads(f.read_text())
        return {}
    a, b = load("old"), load("new")
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k) and not any(c in k for c in CLOCK))
    return f"  (keys: {', '.join(keys)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="git revision of the old code")
    p.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated runs (default: {','.join(RUNS)})")
    p.add_argument("--keep", type=Path, help="build the two repositories here (kept) instead of a temporary dir")
    args = p.parse_args()
    runs = {r: RUNS[r] for r in args.runs.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        old_code, sides = base / "old_code", {"old": base / "old", "new": base / "new"}
        for d in (old_code, *sides.values()):
            d.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive.stdout, check=True)
        prints = {}
        for side, code in (("old", old_code), ("new", ROOT)):
            scratch_repo(code, sides[side])
            repro(sides[side], runs)
            prints[side] = fingerprint(sides[side])
        old, new = prints["old"], prints["new"]
        keys = sorted(old.keys() | new.keys())
        differ = [k for k in keys if old.get(k) != new.get(k)]
        for k in keys:
            state = "same   " if k not in differ else "DIFFERS" if k in old and k in new else "ONLY " + (
                "old" if k in old else "new")
            print(f"{state} {k}{json_keys(sides, k) if state == 'DIFFERS' and k.endswith('.json') else ''}")
    print(f"{len(differ)} of {len(keys)} outputs differ between {args.old} and the working tree")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
