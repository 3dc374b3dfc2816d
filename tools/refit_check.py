"""Did a tokenizer refit reproduce the committed one? If so, keep the committed dvc.lock and metrics.

Yelp's codes may not be committed (licence), so a fresh machine refits its tokenizers (tools/targets.py
`rebuilt`). The refit's codes, state and usage plots are checked by the md5s of dvc.lock, but its metrics JSON
also holds wall-clock figures (`fit_seconds` / `train_seconds`, `peak_memory_mb`), so every refit rewrites the
metrics file and its lock entry even where every output is the same. This compares the working dvc.lock with
the committed one (git HEAD), stage by stage:

- a tokenizer entry whose outputs all have their committed md5 except the metrics file, and whose metrics hold
  the committed values once the wall-clock keys are set aside, is a reproduced refit;
- any other difference is reported (a refit that changed codes, state or a metric, a changed entry of another
  stage) and nothing is touched: exit 1;
- where every difference is a reproduced refit, the committed dvc.lock and metrics files are checked out again
  (`git checkout HEAD -- ...`): the working tree is then the committed state, whose outputs it reproduced.

    python tools/refit_check.py --repo yelp [STAGE ...]   # after `dvc repro` of those stages (default: all)

The Makefile runs it on the `rebuilt` stages after recomputing them. Entries new since HEAD are left as they
are, and the lock is not restored where it holds other uncommitted changes (e.g. a run trained since).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WALL_CLOCK = ("fit_seconds", "train_seconds", "peak_memory_mb")  # differ on every fit; nothing else may


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def committed(pipeline: Path, path: str) -> str | None:
    """The text of `path` (relative to `pipeline`) at git HEAD, or None where HEAD has no such file."""
    p = git(pipeline, "show", f"HEAD:./{path}")
    return p.stdout if p.returncode == 0 else None


def outs(entry: dict) -> dict[str, str | None]:
    return {o["path"]: o.get("md5") for o in entry.get("outs", [])}


def without_wall_clock(text: str) -> dict:
    return {k: v for k, v in json.loads(text).items() if k not in WALL_CLOCK}


def compare(pipeline: Path, now: dict, head: dict, names: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(metrics files of reproduced refits, problems, stages new since HEAD) among the entries `names` of two parsed
    dvc.lock files."""
    reproduced, problems, new = [], [], []
    for name in names:
        entry, old = now.get(name), head.get(name)
        if entry is None:
            if old is not None:
                problems.append(f"{name}: entry removed")
            continue
        if old is None:
            new.append(name)
        elif entry != old:
            if not name.startswith("tokenizer@"):
                problems.append(f"{name}: its entry changed (not a tokenizer refit)")
                continue
            metrics = {p for p in outs(entry) if p.startswith("metrics/") and p.endswith(".json")}
            changed = {p for p, md5 in outs(entry).items() if outs(old).get(p) != md5}
            same_recipe = all(entry.get(k) == old.get(k) for k in ("cmd", "deps", "params"))
            if not same_recipe:
                problems.append(f"{name}: its command, dependencies or params changed")
            elif changed - metrics or set(outs(entry)) != set(outs(old)):
                problems.append(f"{name}: outputs differ from the committed fit: {sorted(changed - metrics)}")
            else:
                for path in sorted(changed):
                    was, is_ = committed(pipeline, path), (pipeline / path).read_text()
                    if was is None or without_wall_clock(was) != without_wall_clock(is_):
                        problems.append(f"{name}: {path} differs beyond its wall-clock figures {WALL_CLOCK}")
                    else:
                        reproduced.append(path)
    return reproduced, problems, new


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=ROOT, help="the pipeline directory (the root: Beauty; yelp: Yelp)")
    ap.add_argument("stages", nargs="*", help="the entries to check (default: every entry)")
    args = ap.parse_args(argv)
    pipeline = args.repo.resolve()
    lock = pipeline / "dvc.lock"
    if not lock.is_file():
        print(f"error: no dvc.lock in {pipeline}", file=sys.stderr)
        return 2
    head_text = committed(pipeline, "dvc.lock")
    if head_text is None:
        print(f"nothing to compare: git HEAD has no dvc.lock in {pipeline}")
        return 0
    now = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    head = (yaml.safe_load(head_text) or {}).get("stages") or {}
    names = args.stages or sorted(set(now) | set(head))
    reproduced, problems, new = compare(pipeline, now, head, names)
    others = sorted(n for n in set(now) | set(head) if n not in names and now.get(n) != head.get(n))
    for p in problems:
        print(f"differs: {p}", file=sys.stderr)
    if new:
        print(f"new since HEAD, left as is: {', '.join(new)}")
    if problems:
        print(f"error: {len(problems)} entries of {lock} differ from git HEAD; nothing restored", file=sys.stderr)
        return 1
    if not reproduced:
        print(f"{lock}: the checked entries are as committed")
    elif new or others:
        print(f"{len(reproduced)} tokenizer refits reproduced the committed outputs (wall-clock figures aside); "
              f"dvc.lock not restored, as it holds other changes: {', '.join(new + others)}")
    else:
        restore = git(pipeline, "checkout", "HEAD", "--", "dvc.lock", *reproduced)
        if restore.returncode != 0:
            print(restore.stderr, file=sys.stderr)
            return 2
        print(f"{len(reproduced)} tokenizer refits reproduced the committed outputs (wall-clock figures aside): "
              f"committed dvc.lock and metrics kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
