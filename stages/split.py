"""Stage `split`: encoded interactions -> train / validation / test for next-item prediction."""
import pandas as pd

from _common import load_section, setup_logging, stage_args
from lib.data.split import SplitConfig, split
from lib.io import write_json, write_parquet


def main() -> None:
    args = stage_args(__doc__, {
        "interactions": "encoded interactions parquet",
        "out-dir": "output directory: train, train_full, val, test parquet and split.json",
        "metrics": "output: metrics JSON",
    })
    cfg = load_section(args.params, "split", SplitConfig)
    setup_logging()
    s = split(pd.read_parquet(args.interactions), cfg)
    for name in ("train", "train_full", "val", "test"):
        write_parquet(getattr(s, name), args.out_dir / f"{name}.parquet")
    # The split's own description travels with it: models read it, not params.yaml.
    write_json(s.info, args.out_dir / "split.json")
    write_json(s.info, args.metrics)


if __name__ == "__main__":
    main()
