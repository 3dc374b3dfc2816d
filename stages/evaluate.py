"""Stage `evaluate`: every model's val/test recommendations -> metrics, paired tests, leaderboard, plots."""
import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.evaluate import SPLITS, EvaluateConfig, evaluate
from lib.io import write_csv, write_figure, write_json, write_parquet, write_text


def _models_flag(p) -> None:
    p.add_argument("--models", default="",
                   help="comma-separated model names; lists are <recs-dir>/<model>/{val,test}.parquet; "
                        "default: every model directory under --recs-dir")


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
    }, extra=_models_flag, argv=argv)
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


if __name__ == "__main__":
    main()
