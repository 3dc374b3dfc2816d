"""Stage `evaluate`: every model's val/test recommendations -> metrics, paired tests, leaderboard, plots,
and the study's report (reports/RESULTS.md) from those metrics, the training facts and the tokenizers' diagnostics."""
import os
from pathlib import Path

import numpy as np
import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.evaluate import SPLITS, EvaluateConfig, evaluate
from lib.io import read_json, write_csv, write_figure, write_json, write_parquet, write_text
from lib.plots import codebook_usage_figure
from lib.report import ReportInputs, render


def _extra_flags(p) -> None:
    p.add_argument("--models", default="",
                   help="comma-separated model names; lists are <recs-dir>/<model>/{val,test}.parquet; "
                        "default: every model directory under --recs-dir")
    p.add_argument("--results", type=Path, help="output: the study's report (markdown); omitted = not written")
    p.add_argument("--train-metrics", type=Path, help="directory of <model>.json training facts (for --results)")
    p.add_argument("--tokenizer-metrics", type=Path, nargs="*", default=[],
                   help="tokenizer metrics: <name>.json files, or directories of them (for --results)")
    p.add_argument("--codes", type=Path, nargs="*", default=[],
                   help="tokenizer outputs: a directory holding codes.npy (named after it), or a directory "
                        "of such directories (for --results)")


def named_files(paths: list[Path], filename: str | None) -> dict[str, Path]:
    """name -> file: with `filename` None, *.json files (name = stem), or every *.json in a directory;
    otherwise directories holding `filename` (name = directory), or every such subdirectory."""
    absent = [str(p) for p in paths if not p.exists()]
    if absent:
        raise SystemExit(f"error: report input not found: {absent}")
    out: dict[str, Path] = {}
    for p in paths:
        if filename is None:
            files = sorted(p.glob("*.json")) if p.is_dir() else [p]
            out.update({f.stem: f for f in files})
        elif (p / filename).is_file():
            out[p.name] = p / filename
        else:
            out.update({d.name: d / filename for d in sorted(p.iterdir()) if (d / filename).is_file()})
    return out


def write_results(args, cfg: EvaluateConfig, leaderboard: dict) -> None:
    """reports/RESULTS.md and the codebook-usage figure beside the other evaluation figures."""
    train = named_files([args.train_metrics], None) if args.train_metrics else {}
    inp = ReportInputs(leaderboard=leaderboard,
                       train={name: read_json(f) for name, f in train.items()},
                       tokenizers={n: read_json(f) for n, f in named_files(args.tokenizer_metrics, None).items()},
                       codes={n: np.load(f) for n, f in named_files(args.codes, "codes.npy").items()})
    for name, meta in named_files(args.codes, "meta.json").items():  # which method made each tokenizer's codes
        inp.tokenizers.setdefault(name, {})["method"] = read_json(meta).get("method")
    figures = ["metrics_vs_k", "cold_warm"]
    if inp.codes:
        write_figure(codebook_usage_figure(inp.codes), args.plots_dir / "codebook_usage.png", dpi=120)
        figures.append("codebook_usage")
    rel = {f: os.path.relpath(args.plots_dir / f"{f}.png", args.results.parent) for f in figures}
    write_text(render(inp, cfg, rel), args.results)


def discover(recs_dir) -> list[str]:
    """Model names = subdirectories of recs_dir (outputs of the train stages), sorted."""
    if not recs_dir.is_dir():
        raise SystemExit(f"error: recommendations directory not found: {recs_dir}")
    return sorted(d.name for d in recs_dir.iterdir() if d.is_dir() and not d.name.startswith("."))


def main(argv: list[str] | None = None) -> None:
    args = stage_args(__doc__, {
        "split-dir": "ground truth: val.parquet and test.parquet",
        "items": "item table parquet (catalogue size for coverage)",
        "recs-dir": "recommendations: <model>/val.parquet and <model>/test.parquet",
        "metrics-dir": "output: <model>.json per model",
        "leaderboard": "output: leaderboard JSON (all models, paired comparisons)",
        "plots-dir": "output: metrics_vs_k and cold_warm as csv and png",
        "report": "output: markdown leaderboard",
        "per-user-dir": "output: <model>_test_per_user.parquet",
    }, extra=_extra_flags, argv=argv)
    cfg = load_section(args.params, "evaluate", EvaluateConfig)
    setup_logging()
    models = [m.strip() for m in args.models.split(",") if m.strip()] or discover(args.recs_dir)
    if not models:
        raise SystemExit(f"error: no models found under {args.recs_dir}")
    paths = {m: {s: args.recs_dir / m / f"{s}.parquet" for s in SPLITS} for m in models}
    for path in (p for by_split in paths.values() for p in by_split.values()):
        if not path.is_file():
            raise SystemExit(f"error: missing recommendations file {path}")
    truth = {s: pd.read_parquet(args.split_dir / f"{s}.parquet") for s in SPLITS}
    recs = {m: {s: pd.read_parquet(p) for s, p in by_split.items()} for m, by_split in paths.items()}
    sources = {m: {s: str(p) for s, p in by_split.items()} for m, by_split in paths.items()}
    try:
        ev = evaluate(truth, recs, pd.read_parquet(args.items, columns=["item"]), cfg, sources)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    for model, res in ev.models.items():
        write_json(res.metrics, args.metrics_dir / f"{model}.json")
        write_parquet(res.per_user, args.per_user_dir / f"{model}_test_per_user.parquet")
    write_json(ev.leaderboard, args.leaderboard)
    write_text(ev.report, args.report)
    for name, table in ev.plot_data.items():
        write_csv(table, args.plots_dir / f"{name}.csv")
        write_figure(ev.figures[name], args.plots_dir / f"{name}.png", dpi=120)
    if args.results:
        write_results(args, cfg, ev.leaderboard)


if __name__ == "__main__":
    main()
