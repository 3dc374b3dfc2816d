"""Benchmark: training cost per family, before and after, from the training facts every run records.

Every training stage writes metrics/train/<run>.json: median seconds per epoch (its validation included), best
epoch, epochs run, training seconds, peak memory, best validation NDCG@10 and, since issue 31, the machine
(CPU, torch kernels, native bfloat16, threads). This reads them from two sources and prints, per run present
on both sides, before -> after, then per family (params `runs` of the working tree) the medians:

    python benchmarks/training_cost.py --before 484a935                 # a git revision vs the working tree
    python benchmarks/training_cost.py --before HEAD --after my-trial   # a DVC experiment by name (dvc exp run -n)
    python benchmarks/training_cost.py --after my-trial --as sasrec_id=sasrec_id_cos40  # compare renamed runs

A source is a git revision, a DVC experiment's name (its ref under refs/exps) or nothing (the working tree).
The figures are what the stages measured; a run's line names the machine it ran on.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("seconds_per_epoch", "best_epoch", "epochs", "train_seconds", "peak_memory_mb", "best_val_ndcg@10")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def resolve(rev: str) -> str:
    """A git revision as given, or the ref of the DVC experiment of that name."""
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").strip()
    except subprocess.CalledProcessError:
        refs = [r for r in _git("for-each-ref", "--format=%(refname)", "refs/exps").split() if r.endswith(f"/{rev}")]
        if len(refs) != 1:
            raise SystemExit(f"error: {rev!r} is neither a git revision nor exactly one DVC experiment "
                             f"({len(refs)} refs end in /{rev})") from None
        return refs[0]


def train_facts(rev: str | None) -> dict[str, dict]:
    """run -> metrics/train/<run>.json at `rev` (None = working tree)."""
    if rev is None:
        return {f.stem: json.loads(f.read_text()) for f in sorted((ROOT / "metrics/train").glob("*.json"))}
    rev = resolve(rev)
    names = [n for n in _git("ls-tree", "--name-only", f"{rev}:metrics/train").split() if n.endswith(".json")]
    return {n[:-5]: json.loads(_git("show", f"{rev}:metrics/train/{n}")) for n in names}


def where(facts: dict) -> str:
    m = facts.get("machine")
    if not m:
        return "machine not recorded"
    return f"{m['cpu']} {m['cpu_capability']}{' bf16' if m.get('cpu_bf16') else ''}, {m['threads']} thr" + (
        f", {m['gpu']}" if m.get("gpu") else "")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="484a935")
    p.add_argument("--after", default=None, help="a git revision or DVC experiment; default: the working tree")
    p.add_argument("--as", dest="renames", action="append", default=[], metavar="BEFORE=AFTER",
                   help="compare run BEFORE with run AFTER (repeatable)")
    args = p.parse_args()
    before, after = train_facts(args.before), train_facts(args.after)
    pairs = [(r, r) for r in sorted(set(before) & set(after))]
    for pair in args.renames:
        b, _, a = pair.partition("=")
        if b not in before or a not in after:
            raise SystemExit(f"error: --as {pair}: {b!r} not before or {a!r} not after")
        pairs.append((b, a))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # families as the current runs table has them
    family = {r: f for f, runs in params["runs"].items() for r in (runs or {})}
    pairs.sort(key=lambda ba: (family.get(ba[0], "?"), ba))
    print(f"{'run (before -> after)':40s} " + " ".join(f"{k:>24s}" for k in KEYS))
    for b, a in pairs:
        cells = " ".join(f"{str(before[b].get(k)):>11s} -> {str(after[a].get(k)):<9s}" for k in KEYS)
        name = b if a == b else f"{b} -> {a}"
        print(f"{name:40s} {cells}\n{'':40s} before: {where(before[b])}; after: {where(after[a])}")
    print("\nper family, medians (before -> after):")
    for fam in sorted({family.get(b, "?") for b, _ in pairs}):
        runs = [(b, a) for b, a in pairs if family.get(b, "?") == fam]
        cells = []
        for k in KEYS:
            vb = [before[b][k] for b, _ in runs if before[b].get(k) is not None]
            va = [after[a][k] for _, a in runs if after[a].get(k) is not None]
            if vb and va:
                cells.append(f"{k} {statistics.median(vb):g} -> {statistics.median(va):g}")
        print(f"  {fam} ({len(runs)} runs): " + ", ".join(cells))
    only = sorted(set(after) - {a for _, a in pairs})
    if only:
        print("\nonly after:", ", ".join(only))


if __name__ == "__main__":
    main()
