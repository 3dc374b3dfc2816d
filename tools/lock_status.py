"""Is every committed dvc.lock entry still valid here? `dvc status`, split into what matters.

On a fresh clone (empty DVC cache) every stage reports its outputs "not in cache" and every stage
below another one a "deleted" dependency (the upstream output is missing, not changed). Neither
invalidates a result. What does: a dependency "modified" (code, params file, data that differ from
what the lock recorded), a changed param or command, or a stage with no lock entry at all.

    python tools/lock_status.py            # exits 1 if any stage is invalidated
    python tools/lock_status.py --repo yelp   # the same for the Yelp pipeline (yelp/dvc.yaml, yelp/dvc.lock)

Each pipeline's own stages only: `dvc status` without targets would walk every dvc.yaml of the repository.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HARMLESS = {"not in cache", "deleted"}  # missing locally: re-creatable from the lock's recipe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=ROOT, help="the pipeline directory (the root: Beauty; yelp: Yelp)")
    pipeline = ap.parse_args(argv).repo.resolve()
    listed = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=pipeline, capture_output=True, text=True)
    stages = listed.stdout.split()
    if listed.returncode != 0 or not stages:
        print(listed.stderr or f"no stages in {pipeline}/dvc.yaml", file=sys.stderr)
        return 2
    p = subprocess.run(["dvc", "status", "--json", *stages], cwd=pipeline, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stderr, file=sys.stderr)
        return 2
    status = json.loads(p.stdout or "{}")
    lock = (pipeline / "dvc.lock").read_text() if (pipeline / "dvc.lock").exists() else ""
    unlocked = [s for s in stages if f"\n  {s}:" not in lock]  # no recipe recorded: nothing to invalidate
    invalid, missing = {}, []
    for stage, changes in status.items():
        if stage in unlocked:
            continue
        bad = []
        for change in changes:
            if isinstance(change, str):  # e.g. "changed command", "always changed"
                bad.append(change)
                continue
            for kind, files in change.items():
                harmful = kind == "changed deps" and any(v not in HARMLESS for v in files.values())
                if kind == "changed params" or harmful:
                    bad.append(f"{kind}: {files}")
        if bad:
            invalid[stage] = bad
        else:
            missing.append(stage)
    print(f"{len(stages)} stages: {len(set(stages) - set(status))} up to date, {len(missing)} only missing outputs "
          f"or upstream outputs, {len(invalid)} invalidated, {len(unlocked)} never run (no dvc.lock entry)")
    for stage, bad in invalid.items():
        print(f"  INVALIDATED {stage}: " + "; ".join(bad))
    if unlocked:
        print("  never run: " + ", ".join(unlocked))
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
