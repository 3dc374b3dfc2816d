"""Training cost per family, before and after: seconds per epoch, epochs to the best checkpoint, peak memory.

Reads the training facts every run commits (metrics/train/<run>.json) from two git revisions (or the
working tree), matches runs by name and groups them by family (params `runs` of the working tree):

    python tools/speed_table.py                      # 484a935 (before study v2) vs the working tree
    python tools/speed_table.py --before REV --after REV

Prints one line per run present on both sides and the per-family medians. Figures are what the
training stages measured (median wall seconds of an epoch incl. its validation, best epoch, peak RSS).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("seconds_per_epoch", "best_epoch", "epochs", "train_seconds", "peak_memory_mb")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def train_facts(rev: str | None) -> dict[str, dict]:
    """run -> metrics/train/<run>.json at `rev` (None = working tree)."""
    if rev is None:
        return {f.stem: json.loads(f.read_text()) for f in sorted((ROOT / "metrics/train").glob("*.json"))}
    names = [n for n in _git("ls-tree", "--name-only", f"{rev}:metrics/train").split() if n.endswith(".json")]
    return {n[:-5]: json.loads(_git("show", f"{rev}:metrics/train/{n}")) for n in names}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="484a935")
    p.add_argument("--after", default=None, help="a git revision; default: the working tree")
    args = p.parse_args()
    before, after = train_facts(args.before), train_facts(args.after)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())  # families as the current runs table has them
    family = {r: f for f, runs in params["runs"].items() for r in (runs or {})}
    both = sorted(set(before) & set(after), key=lambda r: (family.get(r, "?"), r))
    head = f"{'run':28s} {'family':16s} " + " ".join(f"{k + ' b/a':>26s}" for k in KEYS)
    print(head)
    for r in both:
        cells = " ".join(f"{str(before[r].get(k)):>12s} -> {str(after[r].get(k)):>10s}" for k in KEYS)
        print(f"{r:28s} {family.get(r, '?'):16s} {cells}")
    print("\nper family, medians (before -> after):")
    for fam in sorted({family.get(r, "?") for r in both}):
        runs = [r for r in both if family.get(r, "?") == fam]
        med = {k: (statistics.median(before[r][k] for r in runs if before[r].get(k) is not None),
                   statistics.median(after[r][k] for r in runs if after[r].get(k) is not None)) for k in KEYS}
        print(f"  {fam} ({len(runs)} runs): " + ", ".join(f"{k} {b:g} -> {a:g}" for k, (b, a) in med.items()))
    only = sorted(set(after) - set(before))
    if only:
        print("\nonly after:", ", ".join(only))


if __name__ == "__main__":
    main()
