"""Stage `report`: committed per-run files -> reports/RESULTS.md, its figures and metrics/leaderboard.json.

Reads only what is in git: results/<run>/{run.json,ranks.parquet}, metrics/{eval,train,tokenizers,split}/
and the dvclive curves under plots/. A run is in the report when its run.json is; so re-training one
run and `dvc repro -s report` re-renders the study without any other run's lists or models. Runs that
differ only in their seed are one model in the report (lib/report/models.py `collapse_seeds`).
With --decoding (metrics/decoding.json of stage `decoding`) it ends with a Decoding section; without, the
report is what it was before that section existed.
"""
import os
from pathlib import Path

import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.io import read_json, write_figure, write_json, write_text
from lib.plots import codebook_usage_figure, cold_warm_figure, curves_figure, metrics_vs_k_figure
from lib.report import ReportConfig, ReportInputs, render


def _jsons(directory: Path) -> dict[str, dict]:
    if not directory.is_dir():
        raise SystemExit(f"error: report input directory not found: {directory}")
    return {f.stem: read_json(f) for f in sorted(directory.glob("*.json"))}


def _curve(run_dir: Path) -> pd.DataFrame | None:
    """dvclive's validation NDCG@10 of one run as (step = epoch index, value), or None if absent."""
    val, epochs = run_dir / "plots/metrics/val/ndcg@10.tsv", run_dir / "plots/metrics/epoch.tsv"
    if not val.is_file() or not epochs.is_file():
        return None
    v = pd.read_csv(val, sep="\t").merge(pd.read_csv(epochs, sep="\t"), on="step")
    return pd.DataFrame({"step": v["epoch"], "value": v["ndcg@10"]})


def main() -> None:
    args = stage_args(__doc__, {
        "results-dir": "results/<run>/run.json and ranks.parquet for every run",
        "eval-metrics": "metrics/eval: <run>.json",
        "train-metrics": "metrics/train: <run>.json",
        "tokenizer-metrics": "metrics/tokenizers: <name>.json",
        "tokenizer-plots": "plots/tokenizers: <name>/code_usage.csv",
        "split-metrics": "metrics/split: <protocol>.json",
        "train-plots": "plots/train: <run>/ dvclive curves",
        "results": "output: the report (markdown)",
        "figures-dir": "output: the report's PNG figures",
        "leaderboard": "output: leaderboard JSON (per protocol: models' metrics over seeds, their runs, paired tests)",
    }, extra=lambda p: p.add_argument("--decoding", type=Path, default=None,
                                      help="optional: metrics/decoding.json (stage decoding) -> a Decoding section"))
    cfg = load_section(args.params, "report", ReportConfig)
    setup_logging()
    if args.decoding and not args.decoding.is_file():
        raise SystemExit(f"error: --decoding {args.decoding} not found: run stage `decoding` first")
    run_dirs = sorted(d for d in args.results_dir.iterdir() if (d / "run.json").is_file()) \
        if args.results_dir.is_dir() else []
    if not run_dirs:
        raise SystemExit(f"error: no run.json under {args.results_dir}: train and evaluate a run first")
    evals = _jsons(args.eval_metrics)
    incomplete = [d.name for d in run_dirs if not (d / "ranks.parquet").is_file() or d.name not in evals]
    if incomplete:
        raise SystemExit(f"error: runs trained but not evaluated (run evaluate_<family>@<run>): {incomplete}")
    inp = ReportInputs(
        runs={d.name: read_json(d / "run.json") for d in run_dirs},
        evals={d.name: evals[d.name] for d in run_dirs},
        per_user={d.name: pd.read_parquet(d / "ranks.parquet") for d in run_dirs},
        train={k: v for k, v in _jsons(args.train_metrics).items() if k in {d.name for d in run_dirs}},
        tokenizers=_jsons(args.tokenizer_metrics), splits=_jsons(args.split_metrics),
        decoding=read_json(args.decoding) if args.decoding else None)

    figures = {}
    for protocol in sorted({r["protocol"] for r in inp.runs.values()}):
        runs = sorted(r for r, info in inp.runs.items() if info["protocol"] == protocol)
        curves = {r: c for r in runs if (c := _curve(args.train_plots / r)) is not None}
        figures[f"val_curves_{protocol}"] = curves_figure(curves, f"Validation NDCG@10 ({protocol})", "NDCG@10")
    usage = {n: pd.read_csv(f) for n in sorted(inp.tokenizers)
             if (f := args.tokenizer_plots / n / "code_usage.csv").is_file()}
    if usage:
        figures["codebook_usage"] = codebook_usage_figure(usage)
    # the report's tables come first: the metric figures are drawn from the same long tables
    names = {k: f"![{k}]({os.path.relpath(args.figures_dir / f'{k}.png', args.results.parent)})"
             for k in [*figures, *(f"{t}_{p}" for t in ("metrics_vs_k", "cold_warm")
                                   for p in {r['protocol'] for r in inp.runs.values()})]}
    try:
        report = render(inp, cfg, names)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    for protocol, t in report.tables["metrics_vs_k"].groupby("protocol"):
        figures[f"metrics_vs_k_{protocol}"] = metrics_vs_k_figure(t.rename(columns={"run": "model"}))
    for protocol, t in report.tables["cold_warm"].groupby("protocol"):
        figures[f"cold_warm_{protocol}"] = cold_warm_figure(t.rename(columns={"run": "model"}))
    for name, fig in figures.items():
        write_figure(fig, args.figures_dir / f"{name}.png", dpi=110)
    write_text(report.markdown, args.results)
    write_json(report.leaderboard, args.leaderboard)


if __name__ == "__main__":
    main()
