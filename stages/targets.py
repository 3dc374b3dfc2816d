"""The runs of a set, one `<family>@<run>` per line, for `make core` / `make study` (read by no stage).

    python stages/targets.py core     # the runs of params `study.core`
    python stages/targets.py all      # every run of params `runs`
    python stages/targets.py upstream # the shared stages those runs need (splits, embed, tokenizers)

The Makefile builds the upstream stages once, then runs `dvc repro -s train_<family>@<run>` and
`dvc repro -s evaluate_<family>@<run>` for each run, two runs side by side (one torch thread each):
with `-s` the two lanes never both check (and lock) the shared upstream stages.
"""
import argparse
from pathlib import Path

from _common import load_params


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("which", choices=["core", "all", "upstream"])
    p.add_argument("--core", action="store_true", help="with upstream: only what the core runs need")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    params = load_params(args.params)
    family_of = {name: fam for fam, runs in (params.get("runs") or {}).items() for name in (runs or {})}
    core = (params.get("study") or {}).get("core") or []
    unknown = sorted(set(core) - set(family_of))
    if unknown:
        raise SystemExit(f"error: study.core names runs not in params `runs`: {unknown}")
    chosen = core if args.which == "core" or args.core else sorted(family_of)
    if args.which != "upstream":
        slow_first = sorted(chosen, key=lambda r: family_of[r] != "generators")  # the longest lane starts first
        print("\n".join(f"{family_of[r]}@{r}" for r in slow_first))
        return
    entries = [params["runs"][family_of[r]][r] for r in chosen]
    tokenizers = sorted({e["tokenizer"] for e in entries if e.get("tokenizer")})
    protocols = sorted({e["protocol"] for e in entries} | {params["tokenizers"][t]["protocol"] for t in tokenizers})
    print("\n".join([*(f"split@{x}" for x in protocols), "embed", *(f"tokenizer@{t}" for t in tokenizers)]))


if __name__ == "__main__":
    main()
