"""The runs of a set, one `<family>@<run>` per line, for the Makefile (read by no stage).

    python stages/targets.py runs core       # the runs of params `study.core` (any key of `study`)
    python stages/targets.py runs all        # every run of params `runs` and `vector_rankers`
    python stages/targets.py upstream core   # the shared stages those runs need (splits, embed, tokenizers)
                                             # (+ text_vectors / collab_vectors / vector_tokenizer for runs
                                             # on other item vectors)

A run of params `vector_rankers` is `vector_rankers@<run>` (stages train_vector_rankers@, evaluate_...).
The Makefile builds the upstream stages once, then runs `dvc repro -s train_<family>@<run>` and
`dvc repro -s evaluate_<family>@<run>` for each run, two runs side by side (one torch thread each):
with `-s` the two lanes never both check (and lock) the shared upstream stages.
"""
import argparse
from pathlib import Path

from _common import load_params
from lib.vectors import WRITERS, check_names

VECTOR_RUNS = "vector_rankers"  # a run table outside `runs` (lib/vectors.py); its stages are named like a family's


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["runs", "upstream"])
    p.add_argument("set", help="a key of params `study` (core, ...) or `all`")
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = p.parse_args()
    params = load_params(args.params)
    tables = {**(params.get("runs") or {}), VECTOR_RUNS: params.get(VECTOR_RUNS)}  # family -> its runs
    plain, vec_tok = params.get("tokenizers") or {}, params.get("vector_tokenizers") or {}
    try:
        check_names({(f if f == VECTOR_RUNS else f"runs.{f}"): runs for f, runs in tables.items()}, "results/<run>")
        check_names({"tokenizers": plain, "vector_tokenizers": vec_tok}, "data/tokenizers/<name>")
        check_names({t: params.get(t) for t in WRITERS}, "data/vectors/<name>")
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    family_of = {name: fam for fam, runs in tables.items() for name in (runs or {})}
    entry_of = {name: e for runs in tables.values() for name, e in (runs or {}).items()}
    sets = params.get("study") or {}
    if args.set != "all" and args.set not in sets:
        raise SystemExit(f"error: no run set {args.set!r}: params `study` has {sorted(sets)} (or use `all`)")
    chosen = sorted(family_of) if args.set == "all" else list(sets[args.set] or [])
    unknown = sorted(set(chosen) - set(family_of))
    if unknown:
        raise SystemExit(f"error: study.{args.set} names runs in neither `runs` nor `{VECTOR_RUNS}`: {unknown}")
    if args.what == "runs":
        slow_first = sorted(chosen, key=lambda r: not family_of[r].endswith("generators"))  # longest lanes first
        print("\n".join(f"{family_of[r]}@{r}" for r in slow_first))
        return
    entries = [entry_of[r] for r in chosen]
    tokenizers = sorted({e["tokenizer"] for e in entries if e.get("tokenizer")})
    unknown = sorted(set(tokenizers) - set(plain) - set(vec_tok))
    if unknown:
        raise SystemExit(f"error: runs of {args.set} name tokenizers in neither `tokenizers` nor "
                         f"`vector_tokenizers`: {unknown}")
    table = {**plain, **vec_tok}
    text, collab = params.get("text_vectors") or {}, params.get("collab_vectors") or {}
    vectors = sorted({vec_tok[t]["vectors"] for t in tokenizers if t in vec_tok}
                     | {e["vectors"] for e in entries if e.get("vectors")})
    unknown = sorted(set(vectors) - set(text) - set(collab))
    if unknown:
        raise SystemExit(f"error: runs of {args.set} read vectors in neither `text_vectors` nor "
                         f"`collab_vectors`: {unknown}")
    # collab_vectors@<v> needs its ranker run trained: `dvc repro` of it trains that run first
    protocols = sorted({e["protocol"] for e in entries} | {table[t]["protocol"] for t in tokenizers}
                       | {collab[v]["protocol"] for v in vectors if v in collab})
    print("\n".join([*(f"split@{x}" for x in protocols), "embed", *(f"text_vectors@{v}" for v in vectors if v in text),
                     *(f"tokenizer@{t}" for t in tokenizers if t in plain),
                     *(f"collab_vectors@{v}" for v in vectors if v in collab),
                     *(f"vector_tokenizer@{t}" for t in tokenizers if t in vec_tok)]))


if __name__ == "__main__":
    main()
