"""Stage `evaluate_<family>@<run>`: one run's val/test lists + the ground truth -> its metrics and per-user ranks.

Never imports a model: it reads the lists (the train stage's output), the run's run.json and the
split. Writes metrics/eval/<run>.json (means, slices, coverage) and results/<run>/ranks.parquet
(the target's rank for every validation and test user), both committed, so the report can be
re-rendered from git alone.
"""
import pandas as pd

from _catalogue import load_catalogue
from _common import load_section, setup_logging, stage_args
from lib import catalogue
from lib.cold import cold_pools
from lib.data.split import fit_name
from lib.evaluate import SPLITS, EvaluateConfig, evaluate_run
from lib.io import read_json, write_json, write_parquet
from lib.runs import PROTOCOL_VERSION


def main(argv: list[str] | None = None) -> None:
    args = stage_args(__doc__, {
        "run-info": "the run's run.json (written by its training stage)",
        "split-dir": "the run's protocol: val/test ground truth, the training data, catalogue.parquet and split.json",
        "items": "item table parquet (catalogue size for coverage)",
        "recs-dir": "the run's recommendations: val.parquet and test.parquet",
        "metrics": "output: the run's metrics JSON",
        "per-user": "output: per-user ranks parquet (split, user, rank, slice flags)",
    }, argv=argv)
    cfg = load_section(args.params, "evaluate", EvaluateConfig)
    setup_logging()
    for path in [args.run_info, *(args.recs_dir / f"{s}.parquet" for s in SPLITS),
                 *(args.split_dir / f"{s}.parquet" for s in (*SPLITS, "train", "train_full")),
                 args.split_dir / "split.json"]:
        if not path.is_file():
            raise SystemExit(f"error: input not found: {path}")
    run = read_json(args.run_info)
    truth = {s: pd.read_parquet(args.split_dir / f"{s}.parquet") for s in SPLITS}
    recs = {s: pd.read_parquet(args.recs_dir / f"{s}.parquet") for s in SPLITS}
    items = pd.read_parquet(args.items, columns=["item"])
    info = read_json(args.split_dir / "split.json")
    fit = {s: pd.read_parquet(args.split_dir / f"{fit_name(info, s)}.parquet", columns=["item"])["item"].unique()
           for s in SPLITS}  # the data each list's model was fit on (lib/data/split.py)
    table = load_catalogue(args.split_dir, len(items))
    try:
        lists = {s: catalogue.list_mask(table, s) for s in SPLITS}
        ev = evaluate_run(truth, recs, items, cfg, label=f"run {run.get('name')!r} ({args.recs_dir})",
                          pools=cold_pools(cfg.cold_pools, lists, fit), catalogues=lists)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    write_parquet(ev.per_user, args.per_user)
    write_json({"run": run.get("name"), "protocol": run.get("protocol"), "protocol_version": PROTOCOL_VERSION,
                **ev.metrics}, args.metrics)


if __name__ == "__main__":
    main()
