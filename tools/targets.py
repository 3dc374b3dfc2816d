"""The runs of a set and the stages they need, for the Makefile; the graph is DVC's own (`dvc dag`).

    python tools/targets.py runs core       # `<family>@<run>` per run of params `study.core` (any key of `study`)
    python tools/targets.py runs all        # every run of params `runs`
    python tools/targets.py upstream core   # every stage those runs' training stages depend on, upstream first
    python tools/targets.py rebuilt core    # those of them a fresh clone recomputes (parse, preprocess, splits,
                                            # text vectors: the same bytes on every machine; tokenizers whose codes
                                            # git ignores, as Yelp's: refit, their bytes checked by dvc.lock)
    python tools/targets.py --repo yelp runs core   # the same for the Yelp pipeline (yelp/dvc.yaml, yelp/params.yaml)

The Makefile first recomputes what is missing of the `rebuilt` stages, then `dvc repro --allow-missing` the
upstream ones: a stage whose recorded inputs are unchanged is skipped even where its data is not here (the
tokenizers' codes are committed: a fresh clone reads them, it never refits). Yelp's licence keeps its codes out
of git (.gitignore): its tokenizers are refit under the pinned kernels, and an entry of yelp/dvc.lock that a refit
does not reproduce byte for byte shows as a change in `git diff` (tools/refit_check.py, run next, sets aside the
wall-clock figures of the tokenizer metrics and keeps the committed lock where nothing else changed). Then it runs
`dvc repro -s train_<family>@<run>` and
`dvc repro -s evaluate_<family>@<run>` for each run, two runs side by side (one torch thread each):
with `-s` the two lanes never both check (and lock) the shared upstream stages. A run whose item vectors
come from another run (collaborative vectors) brings that run's training into the upstream list.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
REBUILT = ("parse", "preprocess", "split", "embed")  # stages whose outputs are recomputed bit for bit anywhere


def ignored_by_git(path: Path, cwd: Path) -> bool:
    """Whether git ignores `path`, which need not exist (False where there is no git repository)."""
    try:
        return subprocess.run(["git", "check-ignore", "-q", "--no-index", str(path)], cwd=cwd,
                              capture_output=True).returncode == 0
    except (OSError, ValueError):
        return False


def rebuilt(pipeline: Path, stages: list[str]) -> list[str]:
    """The stages of `stages` a fresh clone recomputes: REBUILT, and tokenizers whose codes git does not hold."""
    def fresh(stage: str) -> bool:
        kind, _, name = stage.partition("@")
        codes = pipeline / "codes" / name / "codes.npy"
        return kind in REBUILT or (kind == "tokenizer" and ignored_by_git(codes, pipeline))
    return [s for s in stages if fresh(s)]


def run_families(params: dict) -> dict[str, str]:
    """run name -> its family (params `runs.<family>.<run>`)."""
    return {run: family for family, runs in (params.get("runs") or {}).items() for run in (runs or {})}


def chosen_runs(params: dict, name: str) -> list[str]:
    """The runs of params `study.<name>` (or every run for `all`), generator families first (longest lanes)."""
    family = run_families(params)
    sets = params.get("study") or {}
    if name != "all" and name not in sets:
        raise SystemExit(f"error: no run set {name!r}: params `study` has {sorted(sets)} (or use `all`)")
    chosen = sorted(family) if name == "all" else list(sets[name] or [])
    unknown = sorted(set(chosen) - set(family))
    if unknown:
        raise SystemExit(f"error: study.{name} names runs not in params `runs`: {unknown}")
    return sorted(chosen, key=lambda r: not family[r].endswith("generators"))


def upstream(pipeline: Path, stages: list[str]) -> list[str]:
    """Every stage the given stages of `pipeline` (the directory of a dvc.yaml) depend on (transitively), in an
    order `dvc repro` may run them. A repository holds one pipeline per dataset (yelp/dvc.yaml beside the root's,
    with the same stage names): only the stages of `pipeline`'s dvc.yaml are addressed by name."""
    import networkx as nx
    from dvc.repo import Repo

    pipeline = pipeline.resolve()
    with Repo(Repo.find_root(str(pipeline))) as repo:
        graph = repo.index.graph  # edges: stage -> the stages whose outputs it reads
        by_name = {s.name: s for s in graph if Path(s.path).parent.resolve() == pipeline}
        missing = [s for s in stages if s not in by_name]
        if missing:
            raise SystemExit(f"error: no such stages in dvc.yaml: {missing}")
        needed = set().union(*(nx.descendants(graph, by_name[s]) for s in stages)) if stages else set()
        order = list(reversed(list(nx.topological_sort(graph))))  # dependencies first
        foreign = sorted(s.addressing for s in needed if Path(s.path).parent.resolve() != pipeline)
        if foreign:  # a pipeline reads only its own outputs (its paths are relative to its directory)
            raise SystemExit(f"error: stages of {pipeline} depend on another pipeline's stages: {foreign}")
        return [s.name for s in order if s in needed]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=["runs", "upstream", "rebuilt"])
    p.add_argument("set", help="a key of params `study` (core, ...) or `all`")
    p.add_argument("--repo", type=Path, default=ROOT,
                   help="the pipeline: a directory with params.yaml and dvc.yaml (the root: Beauty; yelp: Yelp)")
    args = p.parse_args(argv)
    params_file = args.repo / "params.yaml"
    if not params_file.is_file():
        raise SystemExit(f"error: params file not found: {params_file}")
    params = yaml.safe_load(params_file.read_text()) or {}
    family = run_families(params)
    runs = chosen_runs(params, args.set)
    if args.what == "runs":
        print("\n".join(f"{family[r]}@{r}" for r in runs))
    else:
        stages = upstream(args.repo, [f"train_{family[r]}@{r}" for r in runs])
        if args.what == "rebuilt":
            stages = rebuilt(args.repo.resolve(), stages)
        print("\n".join(stages))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
