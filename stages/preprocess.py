"""Stage `preprocess`: exact-duplicate removal, rating filter, repeat removal, N-core, label encoding, text cleaning."""
import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.data.preprocess import PreprocessConfig, preprocess
from lib.io import write_json, write_parquet


def main() -> None:
    args = stage_args(__doc__, {
        "interactions-in": "parsed interactions parquet",
        "items-in": "parsed items parquet",
        "interactions": "output: encoded interactions parquet",
        "items": "output: item table parquet (row i-1 = item i)",
        "users": "output: user table parquet",
        "metrics": "output: metrics JSON",
    })
    cfg = load_section(args.params, "preprocess", PreprocessConfig)
    setup_logging()
    try:
        inter, items, users, stats = preprocess(
            pd.read_parquet(args.interactions_in), pd.read_parquet(args.items_in), cfg)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    write_parquet(inter, args.interactions)
    write_parquet(items, args.items)
    write_parquet(users, args.users)
    write_json(stats, args.metrics)


if __name__ == "__main__":
    main()
