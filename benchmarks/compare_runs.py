"""Compare hyper-parameter runs of benchmarks/protocol_check.py, with seed replicates pooled.

Each run directory (protocol_check's --work) holds its split, its test lists and result.json.
Runs of one model whose overrides differ only in `*.train.seed` are replicates of one config: the table gives
their mean and spread (validation NDCG@10 is what a config is chosen on; test is read after).
Every run is also compared with one base run on the same test users (paired bootstrap CI of the
NDCG@10 difference, lib/evaluate.py), so a gap can be told from user-sampling noise:

    python benchmarks/compare_runs.py /tmp/sweep/* --base /tmp/sweep/default
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib import metrics  # noqa: E402
from lib.evaluate import EvaluateConfig, paired_test  # noqa: E402

K = 10


def config_key(model: str, overrides: list[str]) -> str:
    """The model and its overrides without the seed: runs with the same key are replicates."""
    return f"{model} " + (" ".join(sorted(o for o in overrides if ".train.seed=" not in o)) or "(default)")


def load_run(work: Path) -> dict:
    """One protocol_check directory -> its config key, training facts and per-user test values."""
    res_path = work / "result.json"
    if not res_path.exists():
        raise SystemExit(f"error: {res_path} not found (not a finished protocol_check run)")
    res = json.loads(res_path.read_text())
    test = pd.read_parquet(work / "split" / "test.parquet")
    recs = pd.read_parquet(work / "recs" / "test.parquet")
    if not (recs["user"].to_numpy() == test["user"].to_numpy()).all():
        raise SystemExit(f"error: {work}: test lists and ground truth are not in the same user order")
    top = metrics.top_k(list(recs["items"]), K, seen=list(test["history"]))  # seen items removed
    ranks = metrics.target_ranks(top, test["target"].to_numpy(np.int64))
    return {"name": work.name, "key": config_key(res["model"], res.get("overrides", [])), "train": res["train"],
            "users": test["user"].to_numpy(), "ndcg": metrics.ndcg(ranks, K), "hr": metrics.hit_rate(ranks, K)}


def _mean_sd(xs: list[float], digits: int = 4) -> str:
    return f"{np.mean(xs):.{digits}f}" + (f" ± {np.std(xs, ddof=1):.{digits}f}" if len(xs) > 1 else "")


def tables(runs: list[dict], base: dict, cfg: EvaluateConfig) -> list[str]:
    """Markdown: one row per config (replicates pooled), then one row per run vs the base run."""
    out = [f"| config | runs | s/epoch | best epoch | val NDCG@{K} | test NDCG@{K} | test HR@{K} |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    groups: dict[str, list[dict]] = {}
    for r in runs:
        groups.setdefault(r["key"], []).append(r)
    for key, rs in sorted(groups.items(), key=lambda kv: -np.mean([r["train"]["best_val_ndcg@10"] for r in kv[1]])):
        out.append(f"| {key} | {len(rs)} | {np.mean([r['train']['seconds_per_epoch'] for r in rs]):.1f} | "
                   f"{' / '.join(str(r['train']['best_epoch']) for r in rs)} | "
                   f"{_mean_sd([r['train']['best_val_ndcg@10'] for r in rs])} | "
                   f"{_mean_sd([r['ndcg'].mean() for r in rs])} | {_mean_sd([r['hr'].mean() for r in rs])} |")
    out += ["", f"| run | test NDCG@{K} | diff vs {base['name']} | {100 * (1 - cfg.alpha):.0f}% CI | Wilcoxon p |",
            "|---|---:|---:|---|---:|"]
    for r in runs:
        if not np.array_equal(r["users"], base["users"]):
            raise SystemExit(f"error: {r['name']} and {base['name']} were tested on different users")
        t = paired_test(base["ndcg"], r["ndcg"], cfg)
        out.append(f"| {r['name']} | {t['model']:.4f} | {t['diff']:+.4f} | [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}] "
                   f"| {t['p_value']:.2g} |")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="protocol_check --work directories")
    p.add_argument("--base", type=Path, required=True, help="the run every other one is compared with")
    args = p.parse_args()
    done = [w for w in args.runs if (w / "result.json").exists()]
    for w in sorted(w for w in set(args.runs) - set(done) if w.is_dir()):
        print(f"skipped {w}: no result.json (unfinished run or not a run directory)", file=sys.stderr)
    runs = [load_run(w) for w in done]
    same = [r for w, r in zip(done, runs, strict=True) if w.resolve() == args.base.resolve()]
    base = same[0] if same else load_run(args.base)  # the base is usually one of the runs: read it once
    print("\n".join(tables(runs, base, EvaluateConfig())))


if __name__ == "__main__":
    main()
