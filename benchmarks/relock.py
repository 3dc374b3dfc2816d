"""Re-record the training and tokenizer stages' dvc.lock entries after an output-neutral code change,
without their outputs.

`dvc commit -f` re-records a stage by hashing its outputs, so it needs them in the workspace. A fresh
machine has none of the committed runs' outputs (empty DVC cache), so a neutral change to a file every
run depends on (lib/models/item_repr.py, ...) would leave every run "changed" until it is re-trained.

This script first runs `benchmarks/output_neutral.py OLD` (every training stage of revision OLD and of
the working tree on one synthetic split, outputs compared byte for byte) and stops if any output
differs. Then, for each changed FILE, it replaces the md5 and size of FILE in the `deps` of every
`train_*`, `tokenizer@*` and `vector_tokenizer@*` stage of dvc.lock (output_neutral.py runs every
training stage and every tokenizer method) whose recorded md5 is FILE's md5 at OLD (a stage recorded
with some other version of FILE is left alone, and so is every other stage: upstream stages are re-run
and their outputs compared instead, evaluations are cheap to re-run). Outputs, params and other deps are
untouched. Prints one line per file and the number of stages updated; say so in the commit.

    python benchmarks/relock.py OLD_REV lib/models/item_repr.py lib/models/config.py [--skip rpg]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = re.compile(r"^  (\S+):$")  # a stage's name line under `stages:`
RELOCKED = ("train_", "tokenizer@", "vector_tokenizer@")  # the stages output_neutral.py checks


def file_md5(blob: bytes) -> str:
    """The md5 of a file's bytes, as DVC 3 records a file dependency (`hash: md5`)."""
    return hashlib.md5(blob).hexdigest()


def relock(lock_text: str, path: str, old_md5: str, new_md5: str, new_size: int) -> tuple[str, list[str]]:
    """dvc.lock text with `path`'s dep entry (md5 == old_md5) of every RELOCKED stage updated -> (text, stages)."""
    lines = lock_text.split("\n")
    stage, updated = None, []
    for i, line in enumerate(lines):
        m = STAGE.match(line)
        if m:
            stage = m.group(1)
        if stage is None or not stage.startswith(RELOCKED) or line.strip() != f"- path: {path}":
            continue
        indent = line[: len(line) - len(line.lstrip())] + "  "
        block = range(i + 1, min(i + 4, len(lines)))  # hash, md5, size follow the path line
        md5_at = next((j for j in block if lines[j] == f"{indent}md5: {old_md5}"), None)
        size_at = next((j for j in block if lines[j].startswith(f"{indent}size: ")), None)
        if md5_at is None or size_at is None:
            continue  # recorded with another version of the file: not ours to re-record
        lines[md5_at] = f"{indent}md5: {new_md5}"
        lines[size_at] = f"{indent}size: {new_size}"
        updated.append(stage)
    return "\n".join(lines), updated


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", help="git revision the committed runs were made with")
    p.add_argument("files", nargs="+", help="files changed since OLD (paths as in dvc.yaml)")
    p.add_argument("--skip-check", action="store_true",
                   help="do not run output_neutral.py (only when it has just passed for exactly this change)")
    p.add_argument("--skip", action="append", default=[], metavar="LABEL",
                   help="passed to output_neutral.py: a stage the change means to alter, with no committed run")
    args = p.parse_args()
    if not args.skip_check:
        skip = [a for label in args.skip for a in ("--skip", label)]
        check = subprocess.run([sys.executable, str(ROOT / "benchmarks/output_neutral.py"), args.old, *skip], cwd=ROOT)
        if check.returncode:
            raise SystemExit("error: output_neutral.py found differences (or failed); dvc.lock left unchanged")
    lock_path = ROOT / "dvc.lock"
    text = lock_path.read_text()
    total = set()
    for path in args.files:
        old = subprocess.run(["git", "-C", str(ROOT), "show", f"{args.old}:{path}"], capture_output=True)
        if old.returncode:
            raise SystemExit(f"error: {path} does not exist at {args.old}")
        if not (ROOT / path).is_file():
            raise SystemExit(f"error: file not found: {path}")
        new = (ROOT / path).read_bytes()
        text, stages = relock(text, path, file_md5(old.stdout), file_md5(new), len(new))
        total.update(stages)
        print(f"{path}: {len(stages)} training/tokenizer stages re-recorded")
    tmp = lock_path.with_suffix(".lock.tmp")
    tmp.write_text(text)
    os.replace(tmp, lock_path)  # atomic: dvc.lock is never half-written
    print(f"{len(total)} training/tokenizer stages updated in dvc.lock")


if __name__ == "__main__":
    main()
