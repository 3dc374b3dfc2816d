"""Stage `report`: committed per-run files -> reports/RESULTS.md, reports/protocols/<scope>.md, their figures
and metrics/leaderboard.json.

Reads only what is in git: results/<run>/{run.json,ranks.parquet}, metrics/{eval,train,tokenizers,split}/
and the dvclive curves under plots/. A run is in the report when its run.json is; so re-training one run
and `dvc repro -s report` re-renders the study without any other run's lists or models. With --decoding
(metrics/decoding.json of stage `decoding`) the appendix of that run's scope ends with the decoders' table.
"""
import os
from pathlib import Path

import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.io import atomic_dir, read_json, write_figure, write_json, write_text
from lib.plots import figure
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
        "protocols-dir": "output: one appendix per protocol and protocol version (<scope>.md)",
        "figures-dir": "output: the report's PNG figures",
        "leaderboard": "output: leaderboard JSON (per scope: models' metrics over seeds, their runs, paired tests)",
    }, extra=lambda p: p.add_argument("--decoding", type=Path, default=None,
                                      help="optional: metrics/decoding.json (stage decoding) -> its appendix table"))
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
    names = {d.name for d in run_dirs}
    tokenizers = _jsons(args.tokenizer_metrics)
    inp = ReportInputs(
        runs={d.name: read_json(d / "run.json") for d in run_dirs},
        evals={d.name: evals[d.name] for d in run_dirs},
        per_user={d.name: pd.read_parquet(d / "ranks.parquet") for d in run_dirs},
        train={k: v for k, v in _jsons(args.train_metrics).items() if k in names},
        tokenizers=tokenizers, splits=_jsons(args.split_metrics),
        decoding=read_json(args.decoding) if args.decoding else None,
        curves={r: c for r in sorted(names) if (c := _curve(args.train_plots / r)) is not None},
        code_usage={n: pd.read_csv(f) for n in sorted(tokenizers)
                    if (f := args.tokenizer_plots / n / "code_usage.csv").is_file()})
    links = (os.path.relpath(args.figures_dir, args.results.parent),
             os.path.relpath(args.figures_dir, args.protocols_dir))
    try:
        report = render(inp, cfg, links)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    with atomic_dir(args.figures_dir) as figures, atomic_dir(args.protocols_dir) as protocols:
        for name, (kind, data) in report.figures.items():
            write_figure(figure(kind, name, data), figures / f"{name}.png", dpi=110)
        for name, text in report.appendices.items():
            write_text(text, protocols / f"{name}.md")
    write_text(report.markdown, args.results)
    write_json(report.leaderboard, args.leaderboard)


if __name__ == "__main__":
    main()
