"""The runs of a set, one `<family>@<run>` per line, for the Makefile (read by no stage).

    python stages/targets.py runs core       # the runs of params `study.core` (any key of `study`)
    python stages/targets.py runs all        # every run of params `runs`
    python stages/targets.py upstream core   # the shared stages those runs need (splits, embed, tokenizers)
                                             # (+ collab_vectors / collab_tokenizer for collaborative codes)

The Makefile builds the upstream stages once, then runs `dvc repro -s train_<family>@<run>` and
`dvc repro -s evaluate_<family>@<run>` for each run, two runs side by side (one torch thread each):
with `-s` the two lanes never both check (and lock) the shared upstream stages.
"""
import argparse
from pathlib import Path

from _common import load_params
from lib.collab import check_names


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["runs", "upstream"])
    p.add_argument("set", help="a key of params `study` (core, ...) or `all`")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    params = load_params(args.params)
    family_of = {name: fam for fam, runs in (params.get("runs") or {}).items() for name in (runs or {})}
    sets = params.get("study") or {}
    if args.set != "all" and args.set not in sets:
        raise SystemExit(f"error: no run set {args.set!r}: params `study` has {sorted(sets)} (or use `all`)")
    chosen = sorted(family_of) if args.set == "all" else list(sets[args.set] or [])
    unknown = sorted(set(chosen) - set(family_of))
    if unknown:
        raise SystemExit(f"error: study.{args.set} names runs not in params `runs`: {unknown}")
    if args.what == "runs":
        slow_first = sorted(chosen, key=lambda r: not family_of[r].endswith("generators"))  # longest lanes first
        print("\n".join(f"{family_of[r]}@{r}" for r in slow_first))
        return
    entries = [params["runs"][family_of[r]][r] for r in chosen]
    plain, collab = params.get("tokenizers") or {}, params.get("collab_tokenizers") or {}
    try:
        check_names(plain, collab)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    tokenizers = sorted({e["tokenizer"] for e in entries if e.get("tokenizer")})
    unknown = sorted(set(tokenizers) - set(plain) - set(collab))
    if unknown:
        raise SystemExit(f"error: runs of {args.set} name tokenizers in neither `tokenizers` nor "
                         f"`collab_tokenizers`: {unknown}")
    table = {**plain, **collab}
    # collab_vectors@<v> needs its ranker run trained: `dvc repro` of it trains that run first
    vectors = sorted({collab[t]["vectors"] for t in tokenizers if t in collab})
    protocols = sorted({e["protocol"] for e in entries} | {table[t]["protocol"] for t in tokenizers}
                       | {params["collab_vectors"][v]["protocol"] for v in vectors})
    print("\n".join([*(f"split@{x}" for x in protocols), "embed",
                     *(f"tokenizer@{t}" for t in tokenizers if t in plain), *(f"collab_vectors@{v}" for v in vectors),
                     *(f"collab_tokenizer@{t}" for t in tokenizers if t in collab)]))


if __name__ == "__main__":
    main()
